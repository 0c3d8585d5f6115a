// Package wasmpipetest runs a plugin's logic natively, for `go test`.
//
//	p := &Redact{}
//	if err := wasmpipetest.Init(p, map[string]string{"mask": "user.email"}); err != nil { … }
//	out, err := p.Transform(wasmpipetest.Record("k", `{"user":{"email":"a@b"}}`))
package wasmpipetest

import wasmpipe "github.com/wasmpipe/wasmpipe/sdk/go"

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

// Tombstone is a record with a text key and no value.
func Tombstone(key string) *wasmpipe.Record {
	r := Record(key, "")
	r.Value = nil
	return r
}
