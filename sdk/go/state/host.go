//go:build wasip1

package state

// The component's back end: the host's state interface. The host holds a
// record's writes and drops them itself when the record fails.

import (
	"runtime/debug"

	host "github.com/wasmpipe/wasmpipe/sdk/go/internal/wit/wasmpipe_transform_state"

	witRuntime "go.bytecodealliance.org/pkg/wit/runtime"
	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// The record being transformed, until the host has been told.
var untold struct {
	set   bool
	index uint32
}

// tell says which record of the batch the coming call is for, once per
// record, before its first state call.
func tell() {
	if untold.set {
		untold.set = false
		host.AtRecord(untold.index)
	}
}

// Around a state call whose result the host lowers into this instance's
// memory (a value, a page, an error's message), the collector is off: the
// host allocates through the bindings' cabi_realloc, and a collection
// ending in there would read the wall clock (runtime.gcMarkTermination
// does), an import the component model forbids in cabi_realloc: a trap.
// Turned off, the collector first finishes any cycle under way, here,
// where the clock may be read. (Package wasmpipe keeps it off while the
// host lowers a batch, for the same reason.)
func calling() (gcPercent int) { return debug.SetGCPercent(-1) }

// called turns the collector back on, and lets go of what the host
// allocated for the result: the bindings' allocator pins it until the
// next export call, and the result, referenced from Go now, needs no pin;
// so a batch that reads much state does not hold all of it until it ends.
func called(gcPercent int) {
	witRuntime.Unpin()
	debug.SetGCPercent(gcPercent)
}

func refused(e host.StateError) error {
	switch e.Tag() {
	case host.StateErrorTooLarge:
		return &Error{Kind: TooLarge, Message: e.TooLarge()}
	case host.StateErrorFull:
		return &Error{Kind: Full, Message: e.Full()}
	default:
		return &Error{Kind: Unavailable, Message: e.Unavailable()}
	}
}

// nonNil: the bindings give a nil slice for an empty list.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func get(key []byte) ([]byte, bool, error) {
	tell()
	gc := calling()
	r := host.Get(key)
	called(gc)
	if r.IsErr() {
		return nil, false, refused(r.Err())
	}
	if v := r.Ok(); v.IsSome() {
		return nonNil(v.Some()), true, nil
	}
	return nil, false, nil
}

func put(key, value []byte, hasTTL bool, ttlMs uint64) error {
	tell()
	ttl := witTypes.None[uint64]()
	if hasTTL {
		ttl = witTypes.Some(ttlMs)
	}
	gc := calling()
	r := host.Put(key, value, ttl)
	called(gc)
	if r.IsErr() {
		return refused(r.Err())
	}
	return nil
}

func del(key []byte) error {
	tell()
	gc := calling()
	r := host.Delete(key)
	called(gc)
	if r.IsErr() {
		return refused(r.Err())
	}
	return nil
}

func bound(b Bound) host.Bound {
	switch b.kind {
	case included:
		return host.MakeBoundIncluded(b.key)
	case excluded:
		return host.MakeBoundExcluded(b.key)
	}
	return host.MakeBoundUnbounded()
}

func scan(start, end Bound, limit uint32) ([]Entry, error) {
	tell()
	gc := calling()
	r := host.Scan(bound(start), bound(end), limit)
	called(gc)
	if r.IsErr() {
		return nil, refused(r.Err())
	}
	pairs := r.Ok()
	page := make([]Entry, len(pairs))
	for i, p := range pairs {
		page[i] = Entry{Key: nonNil(p.F0), Value: nonNil(p.F1)}
	}
	return page, nil
}

func streamTime() int64 {
	tell()
	return host.StreamTime()
}

func beginRecord(index uint32, _ int64) {
	untold.set, untold.index = true, index
}

func endRecord(bool) {
	untold.set = false
}

func resetDouble() {}
