package main

// JSON that keeps what the other languages' redact keeps: field order, and
// strings written the way serde_json writes them (no HTML escaping). Go's
// encoding/json reads it (UseNumber keeps each number's text); maps would
// lose the order, so objects are kept as key and value lists.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

type object struct {
	keys   []string
	values []any
}

type array struct{ items []any }

func (o *object) find(key string) int {
	for i, k := range o.keys {
		if k == key {
			return i
		}
	}
	return -1
}

func (o *object) remove(key string) {
	if i := o.find(key); i >= 0 {
		o.keys = append(o.keys[:i], o.keys[i+1:]...)
		o.values = append(o.values[:i], o.values[i+1:]...)
	}
}

// parse reads one JSON document: strict UTF-8, no unpaired surrogate
// escapes (they cannot be written back as UTF-8), nothing after it.
func parse(text []byte) (any, error) {
	if !utf8.Valid(text) {
		return nil, errors.New("not UTF-8")
	}
	if !json.Valid(text) {
		var v any
		err := json.Unmarshal(text, &v)
		if err == nil {
			err = errors.New("invalid")
		}
		return nil, err
	}
	if err := checkSurrogates(text); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	return value(dec)
}

func value(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			o := &object{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := value(dec)
				if err != nil {
					return nil, err
				}
				if i := o.find(k.(string)); i >= 0 {
					o.values[i] = v // a repeated key: the last value, the first place
				} else {
					o.keys, o.values = append(o.keys, k.(string)), append(o.values, v)
				}
			}
			_, err = dec.Token()
			return o, err
		}
		a := &array{items: []any{}}
		for dec.More() {
			v, err := value(dec)
			if err != nil {
				return nil, err
			}
			a.items = append(a.items, v)
		}
		_, err = dec.Token()
		return a, err
	default:
		return t, nil
	}
}

// checkSurrogates refuses a \uD800-\uDFFF escape that is not half of a pair.
func checkSurrogates(text []byte) error {
	in := false
	for i := 0; i < len(text); i++ {
		switch {
		case text[i] == '"':
			in = !in
		case in && text[i] == '\\':
			i++
			if text[i] != 'u' {
				continue
			}
			code, _ := strconv.ParseUint(string(text[i+1:i+5]), 16, 32)
			i += 4
			if code >= 0xDC00 && code <= 0xDFFF {
				return fmt.Errorf("unpaired surrogate at byte %d", i-5)
			}
			if code >= 0xD800 && code <= 0xDBFF {
				if i+6 >= len(text) || text[i+1] != '\\' || text[i+2] != 'u' {
					return fmt.Errorf("unpaired surrogate at byte %d", i-5)
				}
				low, _ := strconv.ParseUint(string(text[i+3:i+7]), 16, 32)
				if low < 0xDC00 || low > 0xDFFF {
					return fmt.Errorf("unpaired surrogate at byte %d", i-5)
				}
				i += 6
			}
		}
	}
	return nil
}

func write(b []byte, v any) []byte {
	switch v := v.(type) {
	case *object:
		b = append(b, '{')
		for i, k := range v.keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(writeString(b, k), ':')
			b = write(b, v.values[i])
		}
		return append(b, '}')
	case *array:
		b = append(b, '[')
		for i, item := range v.items {
			if i > 0 {
				b = append(b, ',')
			}
			b = write(b, item)
		}
		return append(b, ']')
	case string:
		return writeString(b, v)
	case json.Number:
		return append(b, v...)
	case bool:
		return strconv.AppendBool(b, v)
	default:
		return append(b, "null"...)
	}
}

func writeString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			} else {
				b = append(b, c)
			}
		}
	}
	return append(b, '"')
}
