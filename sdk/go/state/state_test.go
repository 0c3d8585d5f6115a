package state_test

// The native double's rules, which are the host's: stream time is the
// highest timestamp up to the current record, a TTL counts from
// max(stream time, 0), an expired entry is invisible, a failed record's
// writes are undone, scans go in key order a page at a time.

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	wasmpipe "github.com/wasmpipe/wasmpipe/sdk/go"
	"github.com/wasmpipe/wasmpipe/sdk/go/state"
	"github.com/wasmpipe/wasmpipe/sdk/go/wasmpipetest"
)

// fn is a plugin made of one function.
type fn func(*wasmpipe.Record) ([]*wasmpipe.Output, error)

func (fn) Init(*wasmpipe.Config) error { return nil }

func (f fn) Transform(r *wasmpipe.Record) ([]*wasmpipe.Output, error) { return f(r) }

// at runs f as the record of that timestamp.
func at(t *testing.T, timestamp int64, f func() error) error {
	t.Helper()
	_, err := wasmpipetest.Run(fn(func(*wasmpipe.Record) ([]*wasmpipe.Output, error) {
		return nil, f()
	}), wasmpipetest.RecordAt(timestamp, "k", "v"))
	return err
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, key string) (string, bool) {
	t.Helper()
	v, ok, err := state.Get([]byte(key))
	must(t, err)
	return string(v), ok
}

func keys(t *testing.T, entries func(func(state.Entry, error) bool)) []string {
	t.Helper()
	got := []string{}
	for e, err := range entries {
		must(t, err)
		got = append(got, string(e.Key))
	}
	return got
}

func TestGetPutDelete(t *testing.T) {
	wasmpipetest.ResetState()
	must(t, at(t, 0, func() error {
		if _, ok := get(t, "a"); ok {
			t.Fatal("a set before any write")
		}
		must(t, state.Put([]byte("a"), []byte("1")))
		must(t, state.Put([]byte("empty"), nil))
		must(t, state.Put([]byte("gone"), []byte("x")))
		return state.Delete([]byte("gone"))
	}))
	if v, ok := get(t, "a"); !ok || v != "1" {
		t.Fatalf("a = %q, %v", v, ok)
	}
	if v, ok, _ := state.Get([]byte("empty")); !ok || v == nil || len(v) != 0 {
		t.Fatalf("empty = %#v, %v; want a present, non-nil empty value", v, ok)
	}
	if _, ok := get(t, "gone"); ok {
		t.Fatal("a deleted key is still there")
	}
	// What Get returns is the caller's.
	v, _, _ := state.Get([]byte("a"))
	v[0] = 'X'
	if v, _ := get(t, "a"); v != "1" {
		t.Fatalf("changing a returned value changed the state: %q", v)
	}
}

func TestAFailedRecordLeavesNoWritesBehind(t *testing.T) {
	wasmpipetest.ResetState()
	must(t, at(t, 0, func() error {
		must(t, state.Put([]byte("kept"), []byte("1")))
		return state.Put([]byte("deleted"), []byte("1"))
	}))
	refused := errors.New("refused after writing")
	err := at(t, 0, func() error {
		must(t, state.Put([]byte("kept"), []byte("2")))
		must(t, state.Put([]byte("kept"), []byte("3")))
		must(t, state.Delete([]byte("deleted")))
		must(t, state.Put([]byte("new"), []byte("1")))
		return refused
	})
	if err != refused {
		t.Fatalf("got %v, want the record's own error", err)
	}
	want := []state.Entry{{Key: []byte("deleted"), Value: []byte("1")}, {Key: []byte("kept"), Value: []byte("1")}}
	if got := wasmpipetest.StateEntries(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after an error: %q, want %q", got, want)
	}
	err = at(t, 0, func() error {
		must(t, state.Put([]byte("kept"), []byte("4")))
		panic("boom")
	})
	if err == nil || err.Error() != "panic: boom" {
		t.Fatalf("got %v, want the panic as the record's error", err)
	}
	if got := wasmpipetest.StateEntries(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a panic: %q, want %q", got, want)
	}
	// The next record's writes stay.
	must(t, at(t, 0, func() error { return state.Put([]byte("kept"), []byte("5")) }))
	if v, _ := get(t, "kept"); v != "5" {
		t.Fatalf("kept = %q", v)
	}
}

func TestStreamTimeIsTheHighestTimestampSoFar(t *testing.T) {
	wasmpipetest.ResetState()
	if tm, ok := state.StreamTime(); ok {
		t.Fatalf("stream time %d before any record", tm)
	}
	for _, c := range []struct{ ts, want int64 }{{1000, 1000}, {400, 1000}, {2500, 2500}, {-5, 2500}} {
		must(t, at(t, c.ts, func() error {
			if tm, ok := state.StreamTime(); !ok || tm != c.want {
				t.Fatalf("record at %d: stream time %d, %v; want %d", c.ts, tm, ok, c.want)
			}
			return nil
		}))
	}
}

func TestTTLCountsInStreamTime(t *testing.T) {
	wasmpipetest.ResetState()
	must(t, at(t, 1000, func() error {
		must(t, state.PutWithTTL([]byte("short"), []byte("s"), 500*time.Millisecond))
		must(t, state.PutWithTTL([]byte("long"), []byte("l"), time.Hour))
		return state.Put([]byte("forever"), []byte("f"))
	}))
	live := func() []string { return keys(t, state.Scan(state.Unbounded(), state.Unbounded())) }
	// An earlier record does not move stream time back.
	must(t, at(t, 1200, func() error { return nil }))
	must(t, at(t, 1, func() error { return nil }))
	must(t, at(t, 1499, func() error {
		if v, ok := get(t, "short"); !ok || v != "s" {
			t.Fatalf("short gone before its expiry: %q, %v", v, ok)
		}
		return nil
	}))
	if got := live(); !reflect.DeepEqual(got, []string{"forever", "long", "short"}) {
		t.Fatalf("at 1499: %q", got)
	}
	must(t, at(t, 1500, func() error {
		if _, ok := get(t, "short"); ok {
			t.Fatal("short still there at its expiry (1000 + 500)")
		}
		return nil
	}))
	if got := live(); !reflect.DeepEqual(got, []string{"forever", "long"}) {
		t.Fatalf("at 1500: %q", got)
	}
	// Written again, it lives again, from the current stream time.
	must(t, at(t, 1500, func() error {
		return state.PutWithTTL([]byte("short"), []byte("again"), time.Second)
	}))
	if v, ok := get(t, "short"); !ok || v != "again" {
		t.Fatalf("short = %q, %v", v, ok)
	}
	if err := state.PutWithTTL([]byte("k"), []byte("v"), -time.Second); err == nil {
		t.Fatal("a negative TTL was taken")
	}
}

func TestATTLBeforeAnyRecordCountsFromZero(t *testing.T) {
	wasmpipetest.ResetState()
	must(t, state.PutWithTTL([]byte("k"), []byte("v"), 10*time.Millisecond))
	must(t, at(t, 9, func() error { return nil }))
	if _, ok := get(t, "k"); !ok {
		t.Fatal("k gone at 9")
	}
	must(t, at(t, 10, func() error { return nil }))
	if _, ok := get(t, "k"); ok {
		t.Fatal("k still there at 10")
	}
}

func TestScanBoundsAndPrefixes(t *testing.T) {
	wasmpipetest.ResetState()
	for _, k := range []string{"b", "a", "ab", "abc", "b\x00", "a\xff", "a\xff\xff", "\xff", "\xff\xff", ""} {
		must(t, state.Put([]byte(k), []byte("v:"+k)))
	}
	all := []string{"", "a", "ab", "abc", "a\xff", "a\xff\xff", "b", "b\x00", "\xff", "\xff\xff"}
	for _, c := range []struct {
		name       string
		start, end state.Bound
		want       []string
	}{
		{"everything", state.Unbounded(), state.Unbounded(), all},
		{"[a, b)", state.Included([]byte("a")), state.Excluded([]byte("b")), []string{"a", "ab", "abc", "a\xff", "a\xff\xff"}},
		{"(a, b]", state.Excluded([]byte("a")), state.Included([]byte("b")), []string{"ab", "abc", "a\xff", "a\xff\xff", "b"}},
		{"(ab, abc)", state.Excluded([]byte("ab")), state.Excluded([]byte("abc")), []string{}},
		{"[b, ..)", state.Included([]byte("b")), state.Unbounded(), []string{"b", "b\x00", "\xff", "\xff\xff"}},
		{"(.., ab]", state.Bound{}, state.Included([]byte("ab")), []string{"", "a", "ab"}},
		{"[c, a)", state.Included([]byte("c")), state.Excluded([]byte("a")), []string{}},
	} {
		if got := keys(t, state.Scan(c.start, c.end)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"a", []string{"a", "ab", "abc", "a\xff", "a\xff\xff"}},
		{"ab", []string{"ab", "abc"}},
		{"a\xff", []string{"a\xff", "a\xff\xff"}},
		{"b", []string{"b", "b\x00"}},
		{"\xff", []string{"\xff", "\xff\xff"}},
		{"\xff\xff", []string{"\xff\xff"}},
		{"", all},
		{"c", []string{}},
	} {
		if got := keys(t, state.ScanPrefix([]byte(c.prefix))); !reflect.DeepEqual(got, c.want) {
			t.Errorf("prefix %q: %q, want %q", c.prefix, got, c.want)
		}
	}
	for e, err := range state.ScanPrefix([]byte("abc")) {
		must(t, err)
		if string(e.Value) != "v:abc" {
			t.Errorf("abc's value: %q", e.Value)
		}
	}
}

func TestScanGoesOnPastAPageAndMayWriteAsItGoes(t *testing.T) {
	wasmpipetest.ResetState()
	const n = 600 // over two pages of 256
	for i := range n {
		must(t, state.Put(fmt.Appendf(nil, "k%04d", i), []byte("v")))
	}
	must(t, state.Put([]byte("other"), []byte("v")))
	i := 0
	for e, err := range state.ScanPrefix([]byte("k")) {
		must(t, err)
		if want := fmt.Sprintf("k%04d", i); string(e.Key) != want {
			t.Fatalf("entry %d is %q, want %q", i, e.Key, want)
		}
		e.Key[0] = 'X' // the caller's copy: the next page is unaffected
		must(t, state.Delete(fmt.Appendf(nil, "k%04d", i)))
		i++
	}
	if i != n {
		t.Fatalf("scanned %d entries, want %d", i, n)
	}
	if got := keys(t, state.Scan(state.Unbounded(), state.Unbounded())); !reflect.DeepEqual(got, []string{"other"}) {
		t.Fatalf("left: %q", got)
	}
	// Stopping early is fine.
	for range state.Scan(state.Unbounded(), state.Unbounded()) {
		break
	}
}

func TestErrorsReadAsTheOtherSDKsAndAreFoundWithErrorsAs(t *testing.T) {
	for kind, want := range map[state.Kind]string{
		state.TooLarge:    "state: too large: value of 2097152 bytes",
		state.Full:        "state: full: value of 2097152 bytes",
		state.Unavailable: "state: unavailable: value of 2097152 bytes",
	} {
		err := fmt.Errorf("counting: %w", &state.Error{Kind: kind, Message: "value of 2097152 bytes"})
		var se *state.Error
		if !errors.As(err, &se) || se.Kind != kind || se.Error() != want {
			t.Errorf("%v: got %v", kind, err)
		}
	}
}

func TestU64(t *testing.T) {
	for _, n := range []uint64{0, 1, 255, 256, 1 << 40, ^uint64(0)} {
		b := state.EncodeU64(n)
		if len(b) != 8 || state.DecodeU64(b) != n {
			t.Errorf("%d: %x, %d", n, b, state.DecodeU64(b))
		}
	}
	if b := state.EncodeU64(0x0102030405060708); !bytes.Equal(b, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("not big-endian: %x", b)
	}
	for _, b := range [][]byte{nil, {}, {1}, {1, 2, 3, 4, 5, 6, 7}, {1, 2, 3, 4, 5, 6, 7, 8, 9}} {
		if got := state.DecodeU64(b); got != 0 {
			t.Errorf("%x: %d, want 0", b, got)
		}
	}
}
