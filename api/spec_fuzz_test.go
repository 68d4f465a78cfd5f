package api

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecodeJobSpec feeds the strict spec decoder JSON and YAML: no input may
// panic, every refusal is a *SpecError (the API turns it into a 400 naming
// the field), and a spec that decodes survives a JSON round trip unchanged
// (what the CLI does when it sends a YAML file).
func FuzzDecodeJobSpec(f *testing.F) {
	// The shipped examples, then the shapes the decoder treats specially.
	files, _ := filepath.Glob("../examples/*.json")
	more, _ := filepath.Glob("../examples/*.yaml")
	for _, p := range append(files, more...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		`{"name":"a","image":"localhost/x","command":["/bin/true"]}`,
		`{"name":"a","Name":"b"}`,
		`{"name":"a","name":"b"}`,
		`{"env":{"EPOCHS":10}}`,
		`{"resources":{"gpus":-1}} {}`,
		"name: a\nimage: x\ncommand: [a, b]\nenv:\n  A: yes\n",
		"name: a\n---\nname: b\n",
		"env:\n  A: 10\n",
		"resources: {cpus: .inf}\n",
		"[" + "[" + "[" + "]]]",
		"\xff\xfe",
		"",
		"~",
		"a: &x [*x]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := DecodeJobSpec(data)
		if err != nil {
			var se *SpecError
			if !errors.As(err, &se) || se.Msg == "" {
				t.Fatalf("%q: error %v (%T) is not a *SpecError with a message", data, err, err)
			}
			return
		}
		b, err := json.Marshal(spec)
		if err != nil {
			t.Fatalf("%q decoded to a spec that does not encode: %v", data, err)
		}
		again, err := DecodeJobSpecJSON(b)
		if err != nil {
			t.Fatalf("%q decoded, but its JSON %s is refused: %v", data, b, err)
		}
		if d := cmp.Diff(spec, again); d != "" {
			t.Fatalf("%q: JSON round trip changed the spec (-first +again):\n%s", data, d)
		}
	})
}
