package main

import (
	"strings"
	"testing"

	"github.com/wasmpipe/wasmpipe/sdk/go/wasmpipetest"
)

// run sends one record through a fresh plugin and returns its value.
func run(t *testing.T, config map[string]string, value string) (string, error) {
	t.Helper()
	p := &Redact{}
	if err := wasmpipetest.Init(p, config); err != nil {
		return "", err
	}
	out, err := p.Transform(wasmpipetest.Record("k", value, "h", "1"))
	if err != nil {
		return "", err
	}
	if len(out) != 1 || string(out[0].Key) != "k" || len(out[0].Headers) != 1 ||
		out[0].Headers[0].Name != "h" || string(out[0].Headers[0].Value) != "1" {
		t.Fatalf("want one output with the key and header kept, got %+v", out)
	}
	return string(out[0].Value), nil
}

func TestMasksNestedAndWildcardFieldsKeepingOrder(t *testing.T) {
	got, err := run(t, map[string]string{"mask": "user.email, cards.*.number"},
		`{"user":{"name":"Ann","email":"a@x.io"},"cards":[{"number":"4111","exp":"12/30"},{"number":"5500"}]}`)
	want := `{"user":{"name":"Ann","email":"***"},"cards":[{"number":"***","exp":"12/30"},{"number":"***"}]}`
	if err != nil || got != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
}

func TestDropsFieldsAndUsesACustomMask(t *testing.T) {
	got, err := run(t, map[string]string{"drop": "ssn", "mask": "name", "mask_with": "X"},
		`{"name":"Ann","ssn":"1","age":3.50}`)
	if want := `{"name":"X","age":3.50}`; err != nil || got != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
}

func TestTombstonesPassThrough(t *testing.T) {
	p := &Redact{}
	if err := wasmpipetest.Init(p, map[string]string{"mask": "a"}); err != nil {
		t.Fatal(err)
	}
	out, err := p.Transform(wasmpipetest.Tombstone("k"))
	if err != nil || len(out) != 1 || out[0].Value != nil || string(out[0].Key) != "k" {
		t.Fatalf("got %+v, %v", out, err)
	}
}

func TestNonJSONIsAnErrorNotALeak(t *testing.T) {
	for _, value := range []string{"not json", `{"a":1} x`, "\"\xff\"", `{"a":"\ud800"}`, `{"a":NaN}`} {
		if _, err := run(t, map[string]string{"mask": "a"}, value); err == nil ||
			!strings.HasPrefix(err.Error(), "value is not JSON: ") {
			t.Errorf("%q: got %v, want a 'value is not JSON' error", value, err)
		}
	}
}

func TestConfigErrorsNameTheFix(t *testing.T) {
	for config, want := range map[string]string{
		"":          "set 'mask' and/or 'drop'",
		"mask=a..b": "invalid field path 'a..b': write fields separated by dots, like 'user.email'",
		"masks=a":   "unknown config key 'masks' (known: mask, drop, mask_with)",
	} {
		values := map[string]string{}
		if k, v, ok := strings.Cut(config, "="); ok {
			values[k] = v
		}
		if _, err := run(t, values, "{}"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", config, err, want)
		}
	}
}
