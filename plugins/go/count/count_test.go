package main

import (
	"errors"
	"reflect"
	"testing"
	"time"

	wasmpipe "github.com/wasmpipe/wasmpipe/sdk/go"
	"github.com/wasmpipe/wasmpipe/sdk/go/state"
	"github.com/wasmpipe/wasmpipe/sdk/go/wasmpipetest"
)

func newCount(t *testing.T) *Count {
	t.Helper()
	wasmpipetest.ResetState()
	p := &Count{}
	if err := wasmpipetest.Init(p, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

// values runs one record per key (an empty key is a record without one)
// and returns the values emitted.
func values(t *testing.T, p wasmpipe.Plugin, keys ...string) []string {
	t.Helper()
	got := []string{}
	for _, k := range keys {
		r := wasmpipetest.Record(k, "v")
		if k == "" {
			r.Key = nil
		}
		out, err := wasmpipetest.Run(p, r)
		if err != nil {
			t.Fatalf("%q: %v", k, err)
		}
		for _, o := range out {
			if string(o.Key) != k {
				t.Fatalf("output key %q for record key %q", o.Key, k)
			}
			got = append(got, string(o.Value))
		}
	}
	return got
}

func entry(key string, count uint64) state.Entry {
	return state.Entry{Key: []byte(key), Value: state.EncodeU64(count)}
}

func TestCountsEachKeyAndSkipsRecordsWithoutOne(t *testing.T) {
	p := newCount(t)
	if got, want := values(t, p, "a", "b", "", "a", "a"), []string{"1", "1", "2", "3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got, want := wasmpipetest.StateEntries(), []state.Entry{entry("a", 3), entry("b", 1)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("state %q, want %q", got, want)
	}
	// An empty key is a key.
	out, err := wasmpipetest.Run(p, wasmpipetest.Record("", "v"))
	if err != nil || len(out) != 1 || string(out[0].Value) != "1" || out[0].Key == nil {
		t.Fatalf("empty key: %+v, %v", out, err)
	}
}

func TestKeepsTheRecordButItsValue(t *testing.T) {
	p := newCount(t)
	r := wasmpipetest.Record("k", "v", "h", "1")
	out, err := wasmpipetest.Run(p, r)
	if err != nil || len(out) != 1 || string(out[0].Key) != "k" || string(out[0].Value) != "1" ||
		len(out[0].Headers) != 1 || out[0].Headers[0].Name != "h" || out[0].Timestamp != nil || out[0].Topic != "" {
		t.Fatalf("got %+v, %v", out, err)
	}
}

func TestReadsWhatAnotherLanguageStored(t *testing.T) {
	p := newCount(t)
	must(t, state.Put([]byte("k"), state.EncodeU64(41)))   // the Rust/Python layout
	must(t, state.Put([]byte("bad"), []byte("not a u64"))) // anything else counts as 0
	if got := values(t, p, "k", "bad"); !reflect.DeepEqual(got, []string{"42", "1"}) {
		t.Fatalf("got %q", got)
	}
}

func TestRefusesConfig(t *testing.T) {
	err := wasmpipetest.Init(&Count{}, map[string]string{"x": "1"})
	if err == nil || err.Error() != "unknown config key 'x' (known: )" {
		t.Fatalf("got %v", err)
	}
}

// failing counts, then fails the record: with an error or a panic.
type failing struct {
	Count
	panics bool
}

func (f *failing) Transform(r *wasmpipe.Record) ([]*wasmpipe.Output, error) {
	if _, err := f.Count.Transform(r); err != nil {
		return nil, err
	}
	if f.panics {
		panic("after counting")
	}
	return nil, errors.New("refused after counting")
}

func TestAFailedRecordLeavesItsCountBehind(t *testing.T) {
	p := newCount(t)
	values(t, p, "a", "a")
	for _, f := range []*failing{{}, {panics: true}} {
		_, err := wasmpipetest.Run(f, wasmpipetest.Record("a", "v"))
		if err == nil {
			t.Fatal("the failing plugin did not fail")
		}
		if got := wasmpipetest.StateEntries(); !reflect.DeepEqual(got, []state.Entry{entry("a", 2)}) {
			t.Fatalf("after %v: %q", err, got)
		}
	}
	if got := values(t, p, "a"); !reflect.DeepEqual(got, []string{"3"}) {
		t.Fatalf("got %q", got)
	}
}

// expiring counts per key within a TTL of stream time, as a plugin built
// on count would: a key not seen for a minute starts over.
type expiring struct{ Count }

func (*expiring) Transform(r *wasmpipe.Record) ([]*wasmpipe.Output, error) {
	stored, _, err := state.Get(r.Key)
	if err != nil {
		return nil, err
	}
	n := state.DecodeU64(stored) + 1
	if err := state.PutWithTTL(r.Key, state.EncodeU64(n), time.Minute); err != nil {
		return nil, err
	}
	out := r.Forward()
	out.Value = state.EncodeU64(n)
	return []*wasmpipe.Output{out}, nil
}

func TestATTLExpiresInStreamTime(t *testing.T) {
	newCount(t)
	p := &expiring{}
	minute := time.Minute.Milliseconds()
	for _, c := range []struct {
		key  string
		ts   int64
		want uint64
	}{
		{"a", 1_000, 1},                // expires at 1,000 + a minute
		{"a", 1_000 + minute - 1, 2},   // 1 ms before: live; expires a minute from here
		{"b", 500, 1},                  // late: stream time stays at 1,000 + minute - 1, b's minute counts from there
		{"a", 1_000 + 2*minute - 2, 3}, // 1 ms before again
		{"a", 1_000 + 3*minute - 2, 1}, // exactly a minute after the last: expired, starts over
		{"b", 1_000 + 3*minute - 2, 1}, // expired too
	} {
		out, err := wasmpipetest.Run(p, wasmpipetest.RecordAt(c.ts, c.key, "v"))
		if err != nil || len(out) != 1 || state.DecodeU64(out[0].Value) != c.want {
			t.Fatalf("%s at %d: %+v, %v; want %d", c.key, c.ts, out, err, c.want)
		}
	}
	if tm, ok := state.StreamTime(); !ok || tm != 1_000+3*minute-2 {
		t.Fatalf("stream time %d, %v", tm, ok)
	}
}

func TestTheCountsScanInKeyOrder(t *testing.T) {
	p := newCount(t)
	values(t, p, "user:2", "user:10", "order:1", "user:1", "user:10", "user;", "user")
	var got []string
	for e, err := range state.ScanPrefix([]byte("user:")) {
		must(t, err)
		got = append(got, string(e.Key)+"="+string(rune('0'+state.DecodeU64(e.Value))))
	}
	if want := []string{"user:1=1", "user:10=2", "user:2=1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("prefix user: %q, want %q", got, want)
	}
	got = nil
	for e, err := range state.Scan(state.Excluded([]byte("order:1")), state.Included([]byte("user:1"))) {
		must(t, err)
		got = append(got, string(e.Key))
	}
	if want := []string{"user", "user:1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("(order:1, user:1]: %q, want %q", got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
