// Package state is keyed state for wasmpipe plugins: bytes under bytes,
// kept by the host per plugin and input partition, durable in Kafka with
// the outputs (exactly-once when the pipeline is), restored when a
// partition moves to another process.
//
//	// Count counts records per key and emits the running count.
//	func (c *Count) Transform(record *wasmpipe.Record) ([]*wasmpipe.Output, error) {
//		if record.Key == nil {
//			return nil, nil
//		}
//		stored, _, err := state.Get(record.Key)
//		if err != nil {
//			return nil, err
//		}
//		count := state.DecodeU64(stored) + 1
//		if err := state.Put(record.Key, state.EncodeU64(count)); err != nil {
//			return nil, err
//		}
//		out := record.Forward()
//		out.Value = strconv.AppendUint(nil, count, 10)
//		return []*wasmpipe.Output{out}, nil
//	}
//
// A record that fails (returns an error, panics, hits a limit) leaves none
// of its writes behind. Time to live is counted in stream time — the
// highest record timestamp the partition has seen, up to the record being
// transformed — so a replay reads the same state. Natively (in `go test`)
// the same calls work on an in-memory double with the same rules, shared
// by the whole test binary; package wasmpipetest runs records through it
// (Run), resets it (ResetState) and reads it (StateEntries).
//
// Keys sort bytewise. The slices returned are the caller's; the slices
// passed in are not kept.
package state

import (
	"encoding/binary"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/wasmpipe/wasmpipe/sdk/go/internal/statehook"
)

// scanPage is how many entries a scan fetches per host call.
const scanPage = 256

// Kind says why the host refused a state call.
type Kind uint8

const (
	// TooLarge: a key or value over the host's limit (the message says which).
	TooLarge Kind = iota + 1
	// Full: too many writes held for the partition until they are durable:
	// write less per batch, or run smaller batches.
	Full
	// Unavailable: the store could not be read; the partition is retried.
	Unavailable
)

func (k Kind) String() string {
	switch k {
	case TooLarge:
		return "too large"
	case Full:
		return "full"
	case Unavailable:
		return "unavailable"
	}
	return fmt.Sprintf("kind %d", uint8(k))
}

// Error is a state call the host refused. Returned from Transform, it
// fails the record, which is dead-lettered; errors.As finds it in a
// wrapped error.
type Error struct {
	Kind    Kind
	Message string
}

// Error reads "state: too large: ...", as in the other SDKs.
func (e *Error) Error() string {
	return "state: " + e.Kind.String() + ": " + e.Message
}

// Entry is a key and its value.
type Entry struct {
	Key, Value []byte
}

// Get returns the value of key and true, or false if it is not set or has
// expired.
func Get(key []byte) ([]byte, bool, error) {
	return get(key)
}

// Put sets key to value.
func Put(key, value []byte) error {
	return put(key, value, false, 0)
}

// PutWithTTL sets key to value until ttl of stream time has passed (counted
// in whole milliseconds, from the record being transformed). A negative
// ttl is refused.
func PutWithTTL(key, value []byte, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("state: negative ttl %v", ttl)
	}
	return put(key, value, true, uint64(ttl.Milliseconds()))
}

// Delete removes key.
func Delete(key []byte) error {
	return del(key)
}

// StreamTime returns the partition's stream time in ms since the epoch —
// the highest record timestamp seen, up to the record being transformed —
// and false before any record.
func StreamTime() (int64, bool) {
	t := streamTime()
	if t == math.MinInt64 {
		return 0, false
	}
	return t, true
}

type boundKind uint8

const (
	unbounded boundKind = iota
	included
	excluded
)

// Bound is one end of a scan. The zero Bound is unbounded.
type Bound struct {
	kind boundKind
	key  []byte
}

// Unbounded is no bound: from the first key, or to the last.
func Unbounded() Bound { return Bound{} }

// Included is a bound at key, key in the range.
func Included(key []byte) Bound { return Bound{included, clone(key)} }

// Excluded is a bound at key, key not in the range.
func Excluded(key []byte) Bound { return Bound{excluded, clone(key)} }

// Scan iterates over the live entries from start to end, in key order,
// fetching them from the host a page at a time. A refused fetch is yielded
// once, as the error, and ends the iteration:
//
//	for e, err := range state.Scan(state.Included(from), state.Excluded(to)) {
//		if err != nil {
//			return nil, err
//		}
//		use(e.Key, e.Value)
//	}
//
// State may be written while iterating; each page starts after the last
// key of the one before.
func Scan(start, end Bound) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		from := start
		for {
			page, err := scan(from, end, scanPage)
			if err != nil {
				yield(Entry{}, err)
				return
			}
			for _, e := range page {
				if !yield(e, nil) {
					return
				}
			}
			if len(page) < scanPage {
				return
			}
			from = Excluded(page[len(page)-1].Key) // a copy: the caller owns the entry
		}
	}
}

// ScanPrefix iterates over the live entries whose key starts with prefix,
// in key order (see Scan).
func ScanPrefix(prefix []byte) iter.Seq2[Entry, error] {
	return Scan(Included(prefix), prefixEnd(prefix))
}

// prefixEnd is the first key past every key starting with prefix: its last
// byte below 0xff raised by one, what follows it dropped. A prefix of only
// 0xff bytes (or none) has none.
func prefixEnd(prefix []byte) Bound {
	end := clone(prefix)
	for len(end) > 0 {
		last := len(end) - 1
		if end[last] < 0xff {
			end[last]++
			return Bound{excluded, end}
		}
		end = end[:last]
	}
	return Bound{}
}

// DecodeU64 reads a u64 stored with EncodeU64 (big-endian); 0 for anything
// that is not 8 bytes, a missing value included.
func DecodeU64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// EncodeU64 is n as 8 bytes, big-endian: the layout the other SDKs'
// examples use, so either reads the other's state.
func EncodeU64(n uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), n)
}

// clone copies b; never nil, so a present empty key or value stays
// distinguishable from none.
func clone(b []byte) []byte {
	return append(make([]byte, 0, len(b)), b...)
}

func init() {
	statehook.Install(beginRecord, endRecord, resetDouble)
}
