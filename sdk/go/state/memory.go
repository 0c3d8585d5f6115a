//go:build !wasip1

package state

// The native back end: the host's rules, in memory, for `go test`. One
// double for the whole test binary, safe to call from any goroutine (but
// tests that use state should not run in parallel with each other).

import (
	"bytes"
	"math"
	"sort"
	"sync"
)

// stored is a value and, when it has one, its expiry in stream time.
type stored struct {
	value   []byte
	expires bool
	expiry  int64
}

// undo is what a key held before the record's write, to put back if the
// record fails.
type undo struct {
	key string
	had bool
	old stored
}

var memory struct {
	sync.Mutex
	entries map[string]stored
	timeSet bool
	time    int64
	undo    []undo
}

// now is the stream time, or the lowest int64 before any record.
func now() int64 {
	if !memory.timeSet {
		return math.MinInt64
	}
	return memory.time
}

func live(s stored) bool {
	return !s.expires || now() < s.expiry
}

func write(key []byte, s stored, remove bool) {
	k := string(key)
	old, had := memory.entries[k]
	memory.undo = append(memory.undo, undo{key: k, had: had, old: old})
	if remove {
		delete(memory.entries, k)
		return
	}
	if memory.entries == nil {
		memory.entries = map[string]stored{}
	}
	memory.entries[k] = s
}

func get(key []byte) ([]byte, bool, error) {
	memory.Lock()
	defer memory.Unlock()
	s, ok := memory.entries[string(key)]
	if !ok || !live(s) {
		return nil, false, nil
	}
	return clone(s.value), true, nil
}

func put(key, value []byte, hasTTL bool, ttlMs uint64) error {
	memory.Lock()
	defer memory.Unlock()
	s := stored{value: clone(value)}
	if hasTTL {
		base := max(now(), 0)
		ttl := int64(min(ttlMs, math.MaxInt64))
		s.expires = true
		s.expiry = math.MaxInt64
		if ttl <= math.MaxInt64-base {
			s.expiry = base + ttl
		}
	}
	write(key, s, false)
	return nil
}

func del(key []byte) error {
	memory.Lock()
	defer memory.Unlock()
	write(key, stored{}, true)
	return nil
}

// after reports whether key is past start; before, whether it is short of end.
func after(key []byte, start Bound) bool {
	c := bytes.Compare(key, start.key)
	return start.kind == unbounded || c > 0 || (c == 0 && start.kind == included)
}

func before(key []byte, end Bound) bool {
	c := bytes.Compare(key, end.key)
	return end.kind == unbounded || c < 0 || (c == 0 && end.kind == included)
}

func scan(start, end Bound, limit uint32) ([]Entry, error) {
	memory.Lock()
	defer memory.Unlock()
	keys := make([]string, 0, len(memory.entries))
	for k := range memory.entries {
		keys = append(keys, k)
	}
	sort.Strings(keys) // bytewise, as the host's order
	page := []Entry{}
	for _, k := range keys {
		key := []byte(k)
		if !after(key, start) {
			continue
		}
		if !before(key, end) || uint32(len(page)) == limit {
			break
		}
		if s := memory.entries[k]; live(s) {
			page = append(page, Entry{Key: key, Value: clone(s.value)})
		}
	}
	return page, nil
}

func streamTime() int64 {
	memory.Lock()
	defer memory.Unlock()
	return now()
}

func beginRecord(_ uint32, timestamp int64) {
	memory.Lock()
	defer memory.Unlock()
	memory.undo = memory.undo[:0]
	if !memory.timeSet || timestamp > memory.time {
		memory.time, memory.timeSet = timestamp, true
	}
}

func endRecord(failed bool) {
	memory.Lock()
	defer memory.Unlock()
	if failed {
		for i := len(memory.undo) - 1; i >= 0; i-- {
			u := memory.undo[i]
			if u.had {
				memory.entries[u.key] = u.old
			} else {
				delete(memory.entries, u.key)
			}
		}
	}
	memory.undo = memory.undo[:0]
}

func resetDouble() {
	memory.Lock()
	defer memory.Unlock()
	memory.entries, memory.timeSet, memory.time, memory.undo = nil, false, 0, nil
}
