// Package statehook is how the record loops (package wasmpipe's in a
// component, package wasmpipetest's natively) tell package state where a
// record starts and ends, without package wasmpipe importing package state:
// a plugin that never uses state links none of it, and so imports nothing
// of the host's state interface.
package statehook

var (
	begin func(index uint32, timestamp int64)
	end   func(failed bool)
	reset func()
)

// Install is called by package state's init.
func Install(beginRecord func(index uint32, timestamp int64), endRecord func(failed bool), resetDouble func()) {
	begin, end, reset = beginRecord, endRecord, resetDouble
}

// BeginRecord says that record index of the batch, with that timestamp,
// is about to be transformed.
func BeginRecord(index uint32, timestamp int64) {
	if begin != nil {
		begin(index, timestamp)
	}
}

// EndRecord says that the record ended, failed (an error or a panic) or not.
func EndRecord(failed bool) {
	if end != nil {
		end(failed)
	}
}

// Reset empties the native double (nothing in a component).
func Reset() {
	if reset != nil {
		reset()
	}
}
