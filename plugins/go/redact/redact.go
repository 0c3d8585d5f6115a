// Command redact masks or drops JSON fields by path, for PII: the Go twin
// of the Rust `redact` plugin, held to the same conformance suite.
//
// Config:
//   - mask: comma-separated field paths whose values are replaced by
//     mask_with (default "***"), e.g. user.email,cards.*.number;
//   - drop: comma-separated field paths removed from the document;
//   - mask_with: the replacement string.
//
// A path is fields separated by dots; `*` is every element of an array or
// every field of an object on the way, a number indexes an array.
// Tombstones pass through. A value that is not JSON is an error, so it is
// dead-lettered rather than leaked unredacted. Field order and numbers are
// kept as written (see json.go).
package main

import (
	"fmt"
	"strconv"
	"strings"

	wasmpipe "github.com/wasmpipe/wasmpipe/sdk/go"
)

type Redact struct {
	mask, drop [][]string
	maskWith   string
}

func parsePath(text string) ([]string, error) {
	segments := strings.Split(text, ".")
	for _, s := range segments {
		if s == "" || strings.TrimSpace(text) == "" {
			return nil, fmt.Errorf("invalid field path '%s': write fields separated by dots, like 'user.email'", text)
		}
	}
	return segments, nil
}

func paths(value string) ([][]string, error) {
	var out [][]string
	for _, item := range strings.Split(value, ",") {
		if item = strings.TrimSpace(item); item != "" {
			p, err := parsePath(item)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
	}
	return out, nil
}

func (r *Redact) Init(config *wasmpipe.Config) error {
	if err := config.Only("mask", "drop", "mask_with"); err != nil {
		return err
	}
	var err error
	if r.mask, err = paths(config.GetOr("mask", "")); err != nil {
		return err
	}
	if r.drop, err = paths(config.GetOr("drop", "")); err != nil {
		return err
	}
	r.maskWith = config.GetOr("mask_with", "***")
	if len(r.mask) == 0 && len(r.drop) == 0 {
		return fmt.Errorf("set 'mask' and/or 'drop' to the field paths to redact, e.g. mask=user.email")
	}
	return nil
}

// index reads an array index as Rust's usize parse does (an optional '+').
func index(text string) (int, bool) {
	digits := strings.TrimPrefix(text, "+")
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, false
	}
	i, err := strconv.Atoi(digits)
	return i, err == nil
}

// parents calls visit(parent, last) wherever path ends in node.
func parents(node any, path []string, visit func(parent any, last string)) {
	head, rest := path[0], path[1:]
	if len(rest) == 0 {
		visit(node, head)
		return
	}
	switch n := node.(type) {
	case *object:
		if head == "*" {
			for _, child := range n.values {
				parents(child, rest, visit)
			}
		} else if i := n.find(head); i >= 0 {
			parents(n.values[i], rest, visit)
		}
	case *array:
		if head == "*" {
			for _, child := range n.items {
				parents(child, rest, visit)
			}
		} else if i, ok := index(head); ok && i < len(n.items) {
			parents(n.items[i], rest, visit)
		}
	}
}

func (r *Redact) maskField(parent any, last string) {
	switch p := parent.(type) {
	case *object:
		if i := p.find(last); i >= 0 {
			p.values[i] = r.maskWith
		}
	case *array:
		for i := range p.items {
			if j, ok := index(last); last == "*" || (ok && i == j) {
				p.items[i] = r.maskWith
			}
		}
	}
}

func dropField(parent any, last string) {
	if p, ok := parent.(*object); ok {
		if last == "*" {
			p.keys, p.values = nil, nil
		} else {
			p.remove(last)
		}
	}
}

func (r *Redact) Transform(record *wasmpipe.Record) ([]*wasmpipe.Output, error) {
	out := record.Forward()
	if record.IsTombstone() {
		return []*wasmpipe.Output{out}, nil
	}
	doc, err := parse(record.Value)
	if err != nil {
		return nil, fmt.Errorf("value is not JSON: %w", err)
	}
	for _, p := range r.mask {
		parents(doc, p, r.maskField)
	}
	for _, p := range r.drop {
		parents(doc, p, dropField)
	}
	out.Value = write(nil, doc)
	return []*wasmpipe.Output{out}, nil
}

func init() { wasmpipe.Register(&Redact{}) }

func main() {}
