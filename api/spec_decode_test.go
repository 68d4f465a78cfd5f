package api

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeJobSpec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     string
		json   bool // DecodeJobSpecJSON instead of DecodeJobSpec
		want   JobSpec
		errHas string // a substring of the error; "" for none
		syntax bool   // the error is a syntax error
	}{
		{
			name: "YAML 1.2 keeps N, Y, NO, ON, OFF and yes as strings",
			in:   "command: [a]\nenv:\n  N: N\n  Y: Y\n  NO: NO\n  ON: ON\n  OFF: OFF\n  A: yes\n  B: off\ntags:\n  Y: N\n  ON: OFF\n",
			want: JobSpec{Command: []string{"a"},
				Env:  map[string]string{"N": "N", "Y": "Y", "NO": "NO", "ON": "ON", "OFF": "OFF", "A": "yes", "B": "off"},
				Tags: map[string]string{"Y": "N", "ON": "OFF"}},
		},
		{
			name: "YAML with every kind of field",
			in:   "name: train\nimage: localhost/t:1\ncommand: [python, train.py]\nresources:\n  cpus: 1.5\n  gpus: 2\nread_only_rootfs: true\ntimeout_seconds: 60\ninputs:\n  data: {datastore: d}\n",
			want: JobSpec{Name: "train", Image: "localhost/t:1", Command: []string{"python", "train.py"}, Resources: Resources{CPUs: 1.5, GPUs: 2},
				ReadOnlyRootfs: true, TimeoutSeconds: 60, Inputs: map[string]Input{"data": {Datastore: "d"}}},
		},
		{name: "JSON", in: `{"command":["a"],"env":{"N":"N"}}`, json: true, want: JobSpec{Command: []string{"a"}, Env: map[string]string{"N": "N"}}},
		{name: "JSON through DecodeJobSpec", in: `{"command":["a"],"priority":"low"}`, want: JobSpec{Command: []string{"a"}, Priority: PriorityLow}},
		{name: "null fields are absent", in: `{"command":["a"],"image":null,"notify":null}`, json: true, want: JobSpec{Command: []string{"a"}}},

		{name: "YAML number for an env value", in: "command: [a]\nenv:\n  EPOCHS: 10\n", errHas: `field env.EPOCHS: got number, want a string (quote it: "10")`},
		{name: "YAML bool for a tag", in: "command: [a]\ntags:\n  x: true\n", errHas: `field tags.x: got bool, want a string (quote it: "true")`},
		{name: "JSON number for an env value", in: `{"command":["a"],"env":{"EPOCHS":10}}`, json: true, errHas: "env.EPOCHS must be a string, not a JSON number"},
		{name: "JSON wrong kind", in: `{"command":"echo hi"}`, json: true, errHas: "command must be an array of strings, not a JSON string"},
		{name: "JSON fraction for a whole number", in: `{"command":["a"],"timeout_seconds":1.5}`, json: true, errHas: "timeout_seconds must be a whole number"},
		{name: "JSON number out of range", in: `{"command":["a"],"timeout_seconds":1e300}`, json: true, errHas: "timeout_seconds"},
		{name: "JSON not an object", in: `["a"]`, json: true, errHas: "job spec must be a JSON object, not a JSON array", syntax: true},
		{name: "YAML not a mapping", in: "- a\n", errHas: "job spec must be a mapping of fields, got array", syntax: true},

		{name: "JSON unknown field", in: `{"command":["a"],"imgae":"x"}`, json: true, errHas: `unknown field "imgae" (did you mean "image"?)`},
		{name: "JSON field in another case", in: `{"command":["a"],"Image":"x"}`, json: true, errHas: `unknown field "Image" (did you mean "image"?)`},
		{name: "YAML unknown nested field", in: "command: [a]\nresources:\n  gpu: 1\n", errHas: `unknown field "resources.gpu" (did you mean "gpus"?)`},

		{name: "JSON duplicate key", in: `{"command":["a"],"image":"x","image":"y"}`, json: true, errHas: `field "image" is given twice`},
		{name: "JSON duplicate env key", in: `{"command":["a"],"env":{"A":"1","A":"2"}}`, json: true, errHas: `field "env.A" is given twice`},
		{name: "JSON duplicate key spelled with an escape", in: `{"command":["a"],"im\u0061ge":"x","image":"y"}`, json: true, errHas: `field "image" is given twice`},
		{name: "JSON duplicate in an array's object", in: `{"command":["a"],"notify":{"url":"u","secret":"s","events":[],"url":"v"}}`, json: true, errHas: `field "notify.url" is given twice`},
		{name: "JSON keys repeated inside a string value", in: `{"command":["a"],"env":{"A":"{\"x\":1,\"x\":2}","B":"]}"}}`, json: true,
			want: JobSpec{Command: []string{"a"}, Env: map[string]string{"A": `{"x":1,"x":2}`, "B": "]}"}}},
		{name: "JSON same key in two objects", in: `{"command":["a"],"env":{"A":"1"},"tags":{"A":"1"}}`, json: true,
			want: JobSpec{Command: []string{"a"}, Env: map[string]string{"A": "1"}, Tags: map[string]string{"A": "1"}}},
		{name: "YAML duplicate key", in: "command: [a]\nenv:\n  A: '1'\n  A: '2'\n", errHas: `mapping key "A" already defined`, syntax: true},

		{name: "JSON trailing data", in: `{"command":["a"]} x`, json: true, errHas: "followed by more data", syntax: true},
		{name: "JSON second value", in: `{"command":["a"]}{"command":["b"]}`, json: true, errHas: "followed by more data", syntax: true},
		{name: "YAML second document", in: "command: [a]\n---\ncommand: [b]\n", errHas: "more than one YAML document", syntax: true},
		{name: "JSON null", in: `null`, json: true, errHas: "empty", syntax: true},
		{name: "JSON empty", in: " \n", json: true, errHas: "empty", syntax: true},
		{name: "YAML empty", in: "\n", errHas: "job spec is empty", syntax: true},
		{name: "JSON malformed", in: `{"image": `, json: true, errHas: "not valid JSON", syntax: true},
		{name: "YAML malformed", in: "name: [unclosed\n", errHas: "yaml:", syntax: true},
		{name: "JSON nested too deep", in: `{"command":["a"],"env":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, json: true, errHas: "levels deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			decode := DecodeJobSpec
			if tt.json {
				decode = DecodeJobSpecJSON
			}
			got, err := decode([]byte(tt.in))
			if tt.errHas == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Fatalf("spec (-want +got):\n%s", diff)
				}
				return
			}
			var se *SpecError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("error %v, want a *SpecError containing %q", err, tt.errHas)
			}
			if se.Syntax != tt.syntax {
				t.Errorf("Syntax = %v, want %v", se.Syntax, tt.syntax)
			}
		})
	}
}

// TestDecodeJobSpecSameSpecEitherFormat: a spec written in YAML and in JSON
// decodes to the same JobSpec.
func TestDecodeJobSpecSameSpecEitherFormat(t *testing.T) {
	t.Parallel()
	y, err := DecodeJobSpec([]byte("image: localhost/t:1\ncommand: [a, \"1\"]\nenv: {ON: OFF}\n"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := DecodeJobSpec([]byte(`{"env":{"ON":"OFF"},"command":["a","1"],"image":"localhost/t:1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(j, y); diff != "" {
		t.Fatalf("(-json +yaml):\n%s", diff)
	}
}
