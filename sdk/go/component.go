//go:build wasip1

package wasmpipe

import (
	"fmt"
	"runtime/debug"

	"github.com/wasmpipe/wasmpipe/sdk/go/internal/statehook"
	"github.com/wasmpipe/wasmpipe/sdk/go/internal/wit/export_wasmpipe_transform_typed_transform"
	"github.com/wasmpipe/wasmpipe/sdk/go/internal/wit/wasmpipe_transform_host"
	"github.com/wasmpipe/wasmpipe/sdk/go/internal/wit/wasmpipe_transform_types"
	_ "github.com/wasmpipe/wasmpipe/sdk/go/internal/wit/wit_exports"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

type (
	witRecord = wasmpipe_transform_types.Record
	witOutput = wasmpipe_transform_types.OutputRecord
	witResult = witTypes.Result[[]witOutput, string]
)

func emitLog(level Level, message string, fields [][2]string) {
	pairs := make([]witTypes.Tuple2[string, string], len(fields))
	for i, f := range fields {
		pairs[i] = witTypes.Tuple2[string, string]{F0: f[0], F1: f[1]}
	}
	wasmpipe_transform_host.Log(wasmpipe_transform_host.Level(level), message, pairs)
}

func install() {
	export_wasmpipe_transform_typed_transform.InitHook = initHook
	export_wasmpipe_transform_typed_transform.TransformHook = transformHook
}

func initHook(config []witTypes.Tuple2[string, string]) (result witTypes.Result[witTypes.Unit, string]) {
	values := make(map[string]string, len(config))
	for _, p := range config {
		values[p.F0] = p.F1
	}
	err := guard(func() error { return registered.Init(&Config{values: values}) })
	if err != nil {
		return witTypes.Err[witTypes.Unit, string](err.Error())
	}
	pauseGC()
	return witTypes.Ok[witTypes.Unit, string](witTypes.Unit{})
}

// The collector is off between calls, while the host lowers the next
// batch into this instance's memory through cabi_realloc. A collection
// ending in there reads the wall clock (runtime.gcMarkTermination does),
// an import, and the component model traps an import called from
// cabi_realloc ("cannot leave component instance"); the adapter's clock
// pause covers the monotonic clock only. Turning the collector off first
// finishes any cycle under way, here, where imports are allowed. (Package
// state does the same around its calls that return data.)

// savedGCPercent is the collector's setting while Go code runs.
var savedGCPercent = 100

func pauseGC()  { savedGCPercent = debug.SetGCPercent(-1) }
func resumeGC() { debug.SetGCPercent(savedGCPercent) }

// guard turns a panic into an error, so a plugin's panic costs one record.
func guard(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return f()
}

// bytes is an option as a slice: nil when absent, non-nil when present
// (the bindings give a nil slice for an empty list).
func bytes(o witTypes.Option[[]uint8]) []byte {
	if o.IsNone() {
		return nil
	}
	if b := o.Some(); b != nil {
		return b
	}
	return []byte{}
}

func option(b []byte) witTypes.Option[[]uint8] {
	if b == nil {
		return witTypes.None[[]uint8]()
	}
	return witTypes.Some(b)
}

func transformHook(batch []witRecord) []witResult {
	resumeGC()
	defer pauseGC()
	results := make([]witResult, len(batch))
	var headers []Header
	for i := range batch {
		r := &batch[i]
		headers = headers[:0]
		for _, h := range r.Headers {
			headers = append(headers, Header{Name: h.Name, Value: bytes(h.Value)})
		}
		record := Record{
			Key:           bytes(r.Key),
			Value:         bytes(r.Value),
			Headers:       headers,
			Timestamp:     r.Timestamp,
			TimestampType: TimestampType(r.TimestampType),
			Topic:         r.Topic,
			Partition:     r.Partition,
			Offset:        r.Offset,
		}
		var outputs []*Output
		// Package state, if the plugin uses it, tells the host which
		// record its calls are for (the host drops a failed one's writes).
		statehook.BeginRecord(uint32(i), r.Timestamp)
		err := guard(func() (err error) {
			outputs, err = registered.Transform(&record)
			return err
		})
		statehook.EndRecord(err != nil)
		if err != nil {
			results[i] = witTypes.Err[[]witOutput, string](err.Error())
			continue
		}
		converted := make([]witOutput, 0, len(outputs))
		for _, o := range outputs {
			if o != nil {
				converted = append(converted, output(o))
			}
		}
		results[i] = witTypes.Ok[[]witOutput, string](converted)
	}
	return results
}

func output(o *Output) witOutput {
	w := witOutput{
		Key:       option(o.Key),
		Value:     option(o.Value),
		Headers:   make([]wasmpipe_transform_types.Header, len(o.Headers)),
		Timestamp: witTypes.None[int64](),
		Topic:     witTypes.None[string](),
	}
	for i, h := range o.Headers {
		w.Headers[i] = wasmpipe_transform_types.Header{Name: h.Name, Value: option(h.Value)}
	}
	if o.Timestamp != nil {
		w.Timestamp = witTypes.Some(*o.Timestamp)
	}
	if o.Topic != "" {
		w.Topic = witTypes.Some(o.Topic)
	}
	return w
}
