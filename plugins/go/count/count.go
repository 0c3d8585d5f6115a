// Command count is the running count of records per key, as Kafka Streams'
// groupByKey().count() and the Rust, Python and JavaScript count examples:
// each record with a key emits one output with that key and, as its value,
// how many records of the key the partition has seen, in decimal. Records
// without a key are skipped. The count is kept in wasmpipe's keyed state
// as a u64, big-endian (the other examples' layout: each reads the
// other's state).
package main

import (
	"strconv"

	wasmpipe "github.com/wasmpipe/wasmpipe/sdk/go"
	"github.com/wasmpipe/wasmpipe/sdk/go/state"
)

type Count struct{}

func (*Count) Init(config *wasmpipe.Config) error {
	return config.Only() // takes no config
}

func (*Count) Transform(record *wasmpipe.Record) ([]*wasmpipe.Output, error) {
	if record.Key == nil {
		return nil, nil
	}
	stored, _, err := state.Get(record.Key)
	if err != nil {
		return nil, err
	}
	count := state.DecodeU64(stored) + 1
	if err := state.Put(record.Key, state.EncodeU64(count)); err != nil {
		return nil, err
	}
	out := record.Forward()
	out.Value = strconv.AppendUint(nil, count, 10)
	return []*wasmpipe.Output{out}, nil
}

func init() { wasmpipe.Register(&Count{}) }

func main() {}
