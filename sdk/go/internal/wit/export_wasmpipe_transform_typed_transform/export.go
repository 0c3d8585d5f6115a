// Package export_wasmpipe_transform_typed_transform is where the generated
// bindings call the plugin. It only forwards to the functions package
// wasmpipe installs, so the generated code and the SDK do not import each
// other.
package export_wasmpipe_transform_typed_transform

import (
	"github.com/wasmpipe/wasmpipe/sdk/go/internal/wit/wasmpipe_transform_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// Set by package wasmpipe's Register.
var (
	InitHook      func(config []witTypes.Tuple2[string, string]) witTypes.Result[witTypes.Unit, string]
	TransformHook func(batch []wasmpipe_transform_types.Record) []witTypes.Result[[]wasmpipe_transform_types.OutputRecord, string]
)

func Init(config []witTypes.Tuple2[string, string]) witTypes.Result[witTypes.Unit, string] {
	if InitHook == nil {
		return witTypes.Err[witTypes.Unit, string](
			"no plugin registered: call wasmpipe.Register from the plugin's init function")
	}
	return InitHook(config)
}

func Transform(batch []wasmpipe_transform_types.Record) []witTypes.Result[[]wasmpipe_transform_types.OutputRecord, string] {
	return TransformHook(batch)
}
