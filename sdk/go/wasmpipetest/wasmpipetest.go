// Package wasmpipetest runs a plugin's logic natively, for `go test`.
//
//	p := &Redact{}
//	if err := wasmpipetest.Init(p, map[string]string{"mask": "user.email"}); err != nil { … }
//	out, err := wasmpipetest.Run(p, wasmpipetest.Record("k", `{"user":{"email":"a@b"}}`))
//
// Run goes through a record as the component does, which a plugin using
// package state needs: stream time moves to the record's timestamp and a
// record that fails (an error or a panic) leaves none of its writes in the
// in-memory state double. Calling p.Transform directly is fine otherwise.
package wasmpipetest

import (
	"fmt"

	wasmpipe "github.com/wasmpipe/wasmpipe/sdk/go"
	"github.com/wasmpipe/wasmpipe/sdk/go/internal/statehook"
	"github.com/wasmpipe/wasmpipe/sdk/go/state"
)

// Init runs the plugin's Init with the given config.
func Init(p wasmpipe.Plugin, config map[string]string) error {
	return p.Init(wasmpipe.NewConfig(config))
}

// Record is a record with a text key and value on topic "test", headers
// given as name, value pairs.
func Record(key, value string, headers ...string) *wasmpipe.Record {
	r := &wasmpipe.Record{
		Key:           []byte(key),
		Value:         []byte(value),
		TimestampType: wasmpipe.TimestampCreateTime,
		Topic:         "test",
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Headers = append(r.Headers, wasmpipe.Header{Name: headers[i], Value: []byte(headers[i+1])})
	}
	return r
}

// RecordAt is Record with a timestamp, in ms since the epoch: what stream
// time (and so TTLs) counts.
func RecordAt(timestamp int64, key, value string, headers ...string) *wasmpipe.Record {
	r := Record(key, value, headers...)
	r.Timestamp = timestamp
	return r
}

// Run transforms one record as the component does: its outputs (nil ones
// left out), or its error, with a panic turned into an error ("panic: …")
// as the component turns it. Stream time moves to the record's timestamp
// if it is later; if the record fails, its state writes are undone.
func Run(p wasmpipe.Plugin, record *wasmpipe.Record) (outputs []*wasmpipe.Output, err error) {
	statehook.BeginRecord(0, record.Timestamp)
	defer func() {
		if v := recover(); v != nil {
			outputs, err = nil, fmt.Errorf("panic: %v", v)
		}
		statehook.EndRecord(err != nil)
	}()
	all, err := p.Transform(record)
	if err != nil {
		return nil, err
	}
	for _, o := range all {
		if o != nil {
			outputs = append(outputs, o)
		}
	}
	return outputs, nil
}

// ResetState empties the in-memory state double and its stream time: call
// it at the start of a test that uses package state. The double is shared
// by the whole test binary, so such tests should not run in parallel.
func ResetState() {
	statehook.Reset()
}

// StateEntries is every live entry of the in-memory state double, in key
// order.
func StateEntries() []state.Entry {
	entries := []state.Entry{}
	for e, err := range state.Scan(state.Unbounded(), state.Unbounded()) {
		if err != nil {
			panic(err) // the double refuses nothing
		}
		entries = append(entries, e)
	}
	return entries
}

// Tombstone is a record with a text key and no value.
func Tombstone(key string) *wasmpipe.Record {
	r := Record(key, "")
	r.Value = nil
	return r
}
