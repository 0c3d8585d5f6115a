// Package wasmpipe is the Go SDK for wasmpipe transforms: write one method
// over a record, register the plugin, and build it into a WebAssembly
// component with sdk/go/build.
//
//	type Tag struct{ tag string }
//
//	func (t *Tag) Init(config *wasmpipe.Config) error {
//		if err := config.Only("tag"); err != nil {
//			return err
//		}
//		t.tag = config.GetOr("tag", "seen")
//		return nil
//	}
//
//	func (t *Tag) Transform(record *wasmpipe.Record) ([]*wasmpipe.Output, error) {
//		out := record.Forward()
//		out.Headers = append(out.Headers, wasmpipe.Header{Name: "tag", Value: []byte(t.tag)})
//		return []*wasmpipe.Output{out}, nil
//	}
//
//	func init() { wasmpipe.Register(&Tag{}) }
//	func main() {}
//
// Returning an error dead-letters that record alone; the stream goes on.
// Package state keeps bytes under keys per input partition, durable in
// Kafka with the outputs (see its documentation).
// The same package builds natively, so `go test` runs its logic with the
// helpers of package wasmpipetest.
package wasmpipe

import (
	"fmt"
	"sort"
	"strings"
)

// Plugin is what a plugin implements.
type Plugin interface {
	// Init takes the plugin's config, once per instance, before any record.
	// An error refuses the config: the plugin does not load.
	Init(config *Config) error
	// Transform turns one record into zero or more outputs (none drops it).
	// An error dead-letters the record, with the error's text as reason.
	Transform(record *Record) ([]*Output, error)
}

// TimestampType says how Kafka set a record's timestamp.
type TimestampType uint8

const (
	TimestampNotAvailable TimestampType = iota
	TimestampCreateTime
	TimestampLogAppendTime
)

// Header is a Kafka header. A nil Value is a null header value.
type Header struct {
	Name  string
	Value []byte
}

// Record is a record as consumed, with its full Kafka metadata. A nil Key
// is a null key and a nil Value a tombstone; a present but empty one is a
// non-nil empty slice. Its slices are valid during the Transform call.
type Record struct {
	Key           []byte
	Value         []byte
	Headers       []Header // in order; names may repeat
	Timestamp     int64    // ms since the Unix epoch
	TimestampType TimestampType
	Topic         string
	Partition     int32
	Offset        int64
}

// IsTombstone reports whether the record has no value.
func (r *Record) IsTombstone() bool { return r.Value == nil }

// Header returns the value of the first header named name, and whether
// there is one.
func (r *Record) Header(name string) ([]byte, bool) {
	for _, h := range r.Headers {
		if h.Name == name {
			return h.Value, true
		}
	}
	return nil, false
}

// Forward returns this record as an output to change: same key, value,
// headers (a copy of the list) and timestamp, to the output topic.
func (r *Record) Forward() *Output {
	return &Output{Key: r.Key, Value: r.Value, Headers: append([]Header(nil), r.Headers...)}
}

// Output is a record to produce. A nil Key or Value is a null key or a
// tombstone; a nil Timestamp keeps the input's; an empty Topic is the
// pipeline's output topic, any other name routes the output there (it must
// be one the pipeline allows).
type Output struct {
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp *int64
	Topic     string
}

// Config is the plugin's KEY=VALUE config from the pipeline file.
type Config struct {
	values map[string]string
}

// NewConfig makes a config, for tests.
func NewConfig(values map[string]string) *Config {
	c := &Config{values: map[string]string{}}
	for k, v := range values {
		c.values[k] = v
	}
	return c
}

// Get returns the value of key and whether it is set.
func (c *Config) Get(key string) (string, bool) {
	v, ok := c.values[key]
	return v, ok
}

// GetOr returns the value of key, or fallback if it is not set.
func (c *Config) GetOr(key, fallback string) string {
	if v, ok := c.values[key]; ok {
		return v
	}
	return fallback
}

// Require returns the value of key, or an error naming it.
func (c *Config) Require(key string) (string, error) {
	if v, ok := c.values[key]; ok {
		return v, nil
	}
	return "", fmt.Errorf("missing config key '%s'", key)
}

// Only refuses keys other than these, so a misspelt key fails at load
// rather than being silently ignored.
func (c *Config) Only(keys ...string) error {
	set := make([]string, 0, len(c.values))
	for k := range c.values {
		set = append(set, k)
	}
	sort.Strings(set)
	for _, k := range set {
		known := false
		for _, want := range keys {
			known = known || k == want
		}
		if !known {
			return fmt.Errorf("unknown config key '%s' (known: %s)", k, strings.Join(keys, ", "))
		}
	}
	return nil
}

// Level is a log line's level.
type Level uint8

const (
	LevelTrace Level = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
)

// Log writes a structured log line through the host, tagged with the
// plugin's name; fields are name, value pairs.
func Log(level Level, message string, fields ...string) {
	pairs := make([][2]string, 0, len(fields)/2)
	for i := 0; i+1 < len(fields); i += 2 {
		pairs = append(pairs, [2]string{fields[i], fields[i+1]})
	}
	emitLog(level, message, pairs)
}

// Info logs at info level; see Log.
func Info(message string, fields ...string) { Log(LevelInfo, message, fields...) }

// Warn logs at warn level; see Log.
func Warn(message string, fields ...string) { Log(LevelWarn, message, fields...) }

var registered Plugin

// Register makes p the plugin the component runs. Call it from the plugin
// package's init function.
func Register(p Plugin) {
	registered = p
	install()
}
