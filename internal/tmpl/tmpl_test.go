package tmpl

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// githubPush is a trimmed GitHub push payload.
const githubPush = `{
  "ref": "refs/heads/main",
  "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
  "forced": false,
  "size": 3,
  "repository": {"id": 2432232314, "full_name": "acme/train-resnet", "stargazers_count": 0, "topics": ["ml", "vision"]},
  "pusher": {"name": "octocat", "email": null},
  "head_commit": {"id": "0d1a26e", "message": "Bump lr to 3e-4\n\nSigned-off-by: octo", "score": 0.5},
  "commits": [{"id": "0d1a26e", "added": ["train.py"]}],
  "big": 123456789012345678901234567890,
  "tiny": 1e-7,
  "mass": 6.02e23,
  "whole": 2.0,
  "weird key-name": "dash"
}`

func mustDecode(t *testing.T, body string) map[string]any {
	t.Helper()
	p, err := DecodePayload([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"payload": p, "trigger": map[string]string{"name": "retrain"}}
}

func TestRender(t *testing.T) {
	t.Parallel()
	data := mustDecode(t, githubPush)
	tests := []struct {
		name string
		tpl  string
		want string
	}{
		{name: "literal", tpl: "python train.py", want: "python train.py"},
		{name: "empty", tpl: "", want: ""},
		{name: "nested field", tpl: "{{ .payload.repository.full_name }}", want: "acme/train-resnet"},
		{name: "field in text", tpl: "sha={{ .payload.after }};", want: "sha=0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c;"},
		{name: "extra data", tpl: "{{ .trigger.name }}", want: "retrain"},
		{name: "integer without exponent", tpl: "{{ .payload.repository.id }}", want: "2432232314"},
		{name: "zero", tpl: "{{ .payload.repository.stargazers_count }}", want: "0"},
		{name: "fraction", tpl: "{{ .payload.head_commit.score }}", want: "0.5"},
		{name: "whole float", tpl: "{{ .payload.whole }}", want: "2"},
		{name: "huge integer", tpl: "{{ .payload.big }}", want: "1.2345678901234568e+29"},
		{name: "tiny", tpl: "{{ .payload.tiny }}", want: "1e-07"},
		{name: "bool", tpl: "{{ .payload.forced }}", want: "false"},
		{name: "null is empty", tpl: "<{{ .payload.pusher.email }}>", want: "<>"},
		{name: "newlines kept", tpl: "{{ .payload.head_commit.message }}", want: "Bump lr to 3e-4\n\nSigned-off-by: octo"},
		{name: "index a dashed key", tpl: `{{ index .payload "weird key-name" }}`, want: "dash"},
		{name: "index nested", tpl: `{{ index .payload.commits 0 "added" 0 }}`, want: "train.py"},
		{name: "chain on index", tpl: `{{ (index .payload.commits 0).id }}`, want: "0d1a26e"},
		{name: "len", tpl: `{{ len .payload.repository.topics }}`, want: "2"},
		{name: "slice", tpl: `{{ slice .payload.after 0 7 }}`, want: "0d1a26e"},
		{name: "printf", tpl: `{{ printf "%s@%.7s" .payload.repository.full_name .payload.after }}`, want: "acme/train-resnet@0d1a26e"},
		{name: "pipeline", tpl: `{{ .payload.size | printf "%03d" }}`, want: "003"},
		{name: "if eq string", tpl: `{{ if eq .payload.ref "refs/heads/main" }}prod{{ else }}dev{{ end }}`, want: "prod"},
		{name: "if gt number", tpl: `{{ if gt .payload.size 2 }}many{{ end }}`, want: "many"},
		{name: "with", tpl: `{{ with .payload.pusher }}{{ .name }}{{ end }}`, want: "octocat"},
		{name: "with on null", tpl: `{{ with .payload.pusher.email }}{{ . }}{{ else }}none{{ end }}`, want: "none"},
		{name: "else with", tpl: `{{ with .payload.pusher.email }}{{ . }}{{ else with .payload.pusher.name }}{{ . }}{{ end }}`, want: "octocat"},
		{name: "variable", tpl: `{{ $r := .payload.repository }}{{ $r.full_name }}`, want: "acme/train-resnet"},
		{name: "and or not", tpl: `{{ if and (not .payload.forced) (or .payload.size false) }}ok{{ end }}`, want: "ok"},
		{name: "comment", tpl: `a{{/* note */}}b`, want: "ab"},
		{name: "literal braces", tpl: `{{ "{{" }}x}}`, want: "{{x}}"},
		{name: "shell text stays inert", tpl: `{{ printf "%s" "$(rm -rf /); echo" }}`, want: "$(rm -rf /); echo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Render(tt.tpl, data)
			if err != nil {
				t.Fatalf("Render(%q): %v", tt.tpl, err)
			}
			if got != tt.want {
				t.Errorf("Render(%q) = %q, want %q", tt.tpl, got, tt.want)
			}
			if err := Check(tt.tpl); err != nil {
				t.Errorf("Check(%q): %v", tt.tpl, err)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	t.Parallel()
	data := mustDecode(t, githubPush)
	tests := []struct {
		name    string
		tpl     string
		wantErr error
		wantMsg string
	}{
		{name: "missing key", tpl: "{{ .payload.repository.full_nme }}", wantErr: ErrRender, wantMsg: `"full_nme"`},
		{name: "missing top-level key", tpl: "{{ .pull_request.number }}", wantErr: ErrRender, wantMsg: `"pull_request"`},
		{name: "index missing key", tpl: `{{ index .payload "nope" }}`, wantErr: ErrRender, wantMsg: `"nope"`},
		{name: "index out of range", tpl: `{{ index .payload.commits 5 }}`, wantErr: ErrRender, wantMsg: "out of range"},
		{name: "field of a string", tpl: "{{ .payload.ref.name }}", wantErr: ErrRender, wantMsg: "name"},
		{name: "field of null", tpl: "{{ .payload.pusher.email.domain }}", wantErr: ErrRender, wantMsg: "domain"},
		{name: "method on a number", tpl: "{{ .payload.repository.id.Int64 }}", wantErr: ErrRender, wantMsg: "Int64"},
		{name: "compare mismatched types", tpl: `{{ if eq .payload.size "3" }}x{{ end }}`, wantErr: ErrRender, wantMsg: "incompatible"},
		{name: "output too long", tpl: `{{ printf "%070000d" 1 }}`, wantErr: ErrRender, wantMsg: "longer than"},
		{name: "NUL in output", tpl: `{{ printf "a%cb" 0 }}`, wantErr: ErrRender, wantMsg: "NUL"},

		{name: "syntax", tpl: "{{ .payload.ref ", wantErr: ErrInvalidTemplate, wantMsg: "unclosed action"},
		{name: "unknown function", tpl: `{{ exec "id" }}`, wantErr: ErrInvalidTemplate, wantMsg: `"exec" not defined`},
		{name: "call", tpl: `{{ call .payload.ref }}`, wantErr: ErrInvalidTemplate, wantMsg: `function "call" is not allowed`},
		{name: "call in a pipeline", tpl: `{{ .payload.ref | call }}`, wantErr: ErrInvalidTemplate, wantMsg: `"call"`},
		{name: "call inside if", tpl: `{{ if true }}{{ else }}{{ call .x }}{{ end }}`, wantErr: ErrInvalidTemplate, wantMsg: `"call"`},
		{name: "html", tpl: `{{ html .payload.ref }}`, wantErr: ErrInvalidTemplate, wantMsg: `"html"`},
		{name: "js", tpl: `{{ js .payload.ref }}`, wantErr: ErrInvalidTemplate, wantMsg: `"js"`},
		{name: "urlquery", tpl: `{{ urlquery .payload.ref }}`, wantErr: ErrInvalidTemplate, wantMsg: `"urlquery"`},
		{name: "println", tpl: `{{ println .payload.ref }}`, wantErr: ErrInvalidTemplate, wantMsg: `"println"`},
		{name: "range over data", tpl: `{{ range .payload.commits }}{{ .id }}{{ end }}`, wantErr: ErrInvalidTemplate, wantMsg: "range is not allowed"},
		{name: "range over an integer", tpl: `{{ range 1000000000000 }}{{ end }}`, wantErr: ErrInvalidTemplate, wantMsg: "range is not allowed"},
		{name: "define", tpl: `{{ define "x" }}{{ template "x" }}{{ end }}{{ template "x" }}`, wantErr: ErrInvalidTemplate},
		{name: "template", tpl: `{{ template "x" }}`, wantErr: ErrInvalidTemplate, wantMsg: "template and block"},
		{name: "block", tpl: `{{ block "x" . }}hi{{ end }}`, wantErr: ErrInvalidTemplate},
		{name: "template too long", tpl: strings.Repeat("a", MaxTemplateBytes+1), wantErr: ErrInvalidTemplate, wantMsg: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Render(tt.tpl, data)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Render(%q) = %q, %v; want %v", tt.tpl, got, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Render(%q) error = %q, want it to mention %s", tt.tpl, err, tt.wantMsg)
			}
			if checkErr := Check(tt.tpl); (checkErr != nil) != errors.Is(tt.wantErr, ErrInvalidTemplate) {
				t.Errorf("Check(%q) = %v; want an error exactly for invalid templates", tt.tpl, checkErr)
			}
		})
	}
}

// call could only run a function found in the data. Decoded JSON has none,
// and the template is refused before the data is even looked at.
func TestCallCannotRunFunctions(t *testing.T) {
	t.Parallel()
	ran := false
	data := map[string]any{"f": func() string { ran = true; return "pwned" }}
	_, err := Render(`{{ call .f }}`, data)
	if !errors.Is(err, ErrInvalidTemplate) {
		t.Errorf("Render(call) = %v, want ErrInvalidTemplate", err)
	}
	_, err = Render(`{{ .f }}`, data)
	if !errors.Is(err, ErrInvalidData) {
		t.Errorf("Render with a func in the data = %v, want ErrInvalidData", err)
	}
	if ran {
		t.Error("the function in the data ran")
	}
}

func TestRenderRejectsDataThatIsNotJSON(t *testing.T) {
	t.Parallel()
	type secret struct{ Token string }
	tests := []struct {
		name    string
		data    map[string]any
		wantMsg string
	}{
		{name: "struct", data: map[string]any{"payload": map[string]any{"s": secret{"x"}}}, wantMsg: "payload: s: "},
		{name: "pointer", data: map[string]any{"p": &secret{"x"}}, wantMsg: "p: "},
		{name: "in a slice", data: map[string]any{"l": []any{"ok", make(chan int)}}, wantMsg: "l: [1]: "},
		{name: "typed map", data: map[string]any{"m": map[string]int{"a": 1}}, wantMsg: "m: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Render("{{ . }}", tt.data)
			if !errors.Is(err, ErrInvalidData) {
				t.Fatalf("Render = %v, want ErrInvalidData", err)
			}
			if !strings.HasPrefix(err.Error(), tt.wantMsg) {
				t.Errorf("error %q should start with the path %q", err, tt.wantMsg)
			}
		})
	}
	deep := any("x")
	for range maxDepth + 5 {
		deep = []any{deep}
	}
	if _, err := Render("{{ . }}", map[string]any{"d": deep}); !errors.Is(err, ErrInvalidData) {
		t.Errorf("Render(deep data) = %v, want ErrInvalidData", err)
	}
}

func TestRenderArgs(t *testing.T) {
	t.Parallel()
	data := mustDecode(t, `{"ref":"main; rm -rf / #","after":"abc123","n":7}`)
	args := []string{"python", "train.py", "--ref={{ .payload.ref }}", "{{ .payload.after }}", "--epochs", "{{ .payload.n }}"}
	got, err := RenderArgs(args, data)
	if err != nil {
		t.Fatalf("RenderArgs: %v", err)
	}
	want := []string{"python", "train.py", "--ref=main; rm -rf / #", "abc123", "--epochs", "7"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RenderArgs (-want +got):\n%s", diff)
	}

	_, err = RenderArgs([]string{"ok", "{{ .payload.missing }}"}, data)
	if !errors.Is(err, ErrRender) || !strings.Contains(err.Error(), "args[1]") || !strings.Contains(err.Error(), `"missing"`) {
		t.Errorf("RenderArgs with a missing key = %v, want ErrRender naming args[1] and the key", err)
	}
	_, err = RenderArgs([]string{"{{ .payload.n }}", "{{ range . }}{{ end }}"}, data)
	if !errors.Is(err, ErrInvalidTemplate) || !strings.Contains(err.Error(), "args[1]") {
		t.Errorf("RenderArgs with range = %v, want ErrInvalidTemplate naming args[1]", err)
	}

	big := mustDecode(t, `{"s":"`+strings.Repeat("x", 60<<10)+`"}`)
	many := make([]string, 20)
	for i := range many {
		many[i] = "{{ .payload.s }}"
	}
	if _, err := RenderArgs(many, big); !errors.Is(err, ErrRender) || !strings.Contains(err.Error(), "in all") {
		t.Errorf("RenderArgs over the total cap = %v, want ErrRender", err)
	}
	if got, err := RenderArgs(nil, data); err != nil || len(got) != 0 {
		t.Errorf("RenderArgs(nil) = %v, %v", got, err)
	}
}

func TestRenderMap(t *testing.T) {
	t.Parallel()
	data := mustDecode(t, githubPush)
	env := map[string]string{
		"GIT_SHA":   "{{ .payload.after }}",
		"REPO":      "{{ .payload.repository.full_name }}",
		"REPO_ID":   "{{ .payload.repository.id }}",
		"FIXED":     "1",
		"{{ .x }}":  "keys are not templates",
		"TRIGGERED": "{{ .trigger.name }}",
	}
	got, err := RenderMap(env, data)
	if err != nil {
		t.Fatalf("RenderMap: %v", err)
	}
	want := map[string]string{
		"GIT_SHA":   "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
		"REPO":      "acme/train-resnet",
		"REPO_ID":   "2432232314",
		"FIXED":     "1",
		"{{ .x }}":  "keys are not templates",
		"TRIGGERED": "retrain",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RenderMap (-want +got):\n%s", diff)
	}

	// With two bad values, the error names the first key in sorted order.
	for range 10 {
		_, err := RenderMap(map[string]string{"B": "{{ .b }}", "A": "{{ .a }}", "C": "ok"}, data)
		if !errors.Is(err, ErrRender) || !strings.Contains(err.Error(), `"a"`) {
			t.Fatalf("RenderMap = %v, want ErrRender for key A", err)
		}
	}
}

func TestDecodePayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		wantErr bool
	}{
		{name: "object", body: `{"a":1}`},
		{name: "object with whitespace", body: " \n{\"a\":1}\n "},
		{name: "empty object", body: `{}`},
		{name: "array", body: `[1,2]`, wantErr: true},
		{name: "string", body: `"x"`, wantErr: true},
		{name: "null", body: `null`, wantErr: true},
		{name: "empty", body: ``, wantErr: true},
		{name: "invalid", body: `{"a":}`, wantErr: true},
		{name: "two objects", body: `{"a":1}{"b":2}`, wantErr: true},
		{name: "trailing garbage", body: `{"a":1} x`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodePayload([]byte(tt.body))
			if tt.wantErr != (err != nil) {
				t.Fatalf("DecodePayload(%q) error = %v, want error: %v", tt.body, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidData) {
				t.Errorf("error %v does not wrap ErrInvalidData", err)
			}
		})
	}
	m, err := DecodePayload([]byte(`{"id": 2432232314, "x": 1.50}`))
	if err != nil {
		t.Fatal(err)
	}
	if m["id"] != json.Number("2432232314") || m["x"] != json.Number("1.50") {
		t.Errorf("numbers = %#v %#v, want json.Number with the original text", m["id"], m["x"])
	}
}
