package tmpl

import (
	"errors"
	"strings"
	"testing"
)

// githubBranchDeletion is the shape of the push GitHub sends when a branch is
// deleted: head_commit is null, commits is empty, after is all zeros.
const githubBranchDeletion = `{
  "ref": "refs/heads/feature/lr-sweep",
  "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "after": "0000000000000000000000000000000000000000",
  "repository": {"id": 2432232314, "full_name": "acme/train-resnet", "topics": []},
  "pusher": {"name": "octocat", "email": "octocat@users.noreply.github.com"},
  "created": false,
  "deleted": true,
  "forced": false,
  "base_ref": null,
  "compare": "https://github.com/acme/train-resnet/compare/6113728f27ae...000000000000",
  "commits": [],
  "head_commit": null
}`

// TestRenderErrorsNameThePath: a template that fails on its data says which
// path, and whether a step was null, missing or of another kind, in JSON's
// terms and without Go's.
func TestRenderErrorsNameThePath(t *testing.T) {
	t.Parallel()
	data := mustDecode(t, githubBranchDeletion)
	tests := []struct {
		name, tpl, want string
	}{
		{"field of null", "{{ .payload.head_commit.id }}",
			"cannot read .payload.head_commit.id: .payload.head_commit is null"},
		{"field of null in text", "sha={{ .payload.head_commit.id }}",
			"cannot read .payload.head_commit.id: .payload.head_commit is null"},
		{"deep field of null", "{{ .payload.head_commit.author.email }}",
			"cannot read .payload.head_commit.author.email: .payload.head_commit is null"},
		{"missing field", "{{ .payload.pull_request.number }}",
			`cannot read .payload.pull_request.number: "pull_request" is missing from .payload`},
		{"missing last field", "{{ .payload.repository.clone_url }}",
			`cannot read .payload.repository.clone_url: "clone_url" is missing from .payload.repository`},
		{"missing top-level field", "{{ .pull_request }}",
			`cannot read .pull_request: "pull_request" is missing`},
		{"field of a string", "{{ .payload.ref.name }}",
			"cannot read .payload.ref.name: .payload.ref is a string, not an object"},
		{"field of a list", "{{ .payload.commits.id }}",
			"cannot read .payload.commits.id: .payload.commits is a list, not an object"},
		{"field of a boolean", "{{ .payload.deleted.x }}",
			"cannot read .payload.deleted.x: .payload.deleted is a boolean, not an object"},
		{"field in an if", "{{ if .payload.head_commit.id }}x{{ end }}",
			"cannot read .payload.head_commit.id: .payload.head_commit is null"},
		{"field as an argument", `{{ printf "%.7s" .payload.head_commit.id }}`,
			"cannot read .payload.head_commit.id: .payload.head_commit is null"},
		{"field of a variable", "{{ $c := .payload.head_commit }}{{ $c.id }}",
			"cannot read $c.id: $c is null"},
		{"field of the root variable", "{{ $.payload.head_commit.id }}",
			"cannot read $.payload.head_commit.id: $.payload.head_commit is null"},
		{"field of a pipeline", "{{ (index .payload.commits 0).id }}",
			"at {{ (index .payload.commits 0).id }}: index: index 0 is out of range: the value has 0 elements"},
		{"field of dot in with", "{{ with .payload.repository }}{{ .owner.login }}{{ end }}",
			`cannot read .owner.login: "owner" is missing`},
		{"index through null", `{{ index .payload "head_commit" "id" }}`,
			`at {{ index .payload "head_commit" "id" }}: index: ["head_commit"] is null`},
		{"index missing", `{{ index .payload "nope" }}`,
			`at {{ index .payload "nope" }}: index: ["nope"] is missing`},
		{"len of a number", "{{ len .payload.repository.id }}",
			"at {{ len .payload.repository.id }}: len: len of type number"},
		{"slice of an object", "{{ slice .payload.repository 1 }}",
			"at {{ slice .payload.repository 1 }}: slice: can't slice item of type object"},
		{"compare objects", "{{ if eq .payload.repository .payload.pusher }}x{{ end }}",
			"at {{ if eq .payload.repository .payload.pusher }}: eq: cannot compare lists or objects; compare their fields"},
		{"second line", "a\n{{ .payload.ref }}\n{{ len .payload.deleted }}",
			"at {{ len .payload.deleted }}: len: len of type boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Render(tt.tpl, data)
			var te *Error
			if !errors.As(err, &te) || !errors.Is(err, ErrRender) {
				t.Fatalf("Render(%q) = %v, want an *Error wrapping ErrRender", tt.tpl, err)
			}
			if te.Reason != tt.want {
				t.Errorf("Render(%q) reason\n got: %s\nwant: %s", tt.tpl, te.Reason, tt.want)
			}
		})
	}
	// The name of the failing string leads.
	_, err := RenderMap(map[string]string{"GIT_SHA": "{{ .payload.head_commit.id }}", "REF": "{{ .payload.ref }}"}, data)
	if want := "render template: GIT_SHA: cannot read .payload.head_commit.id: .payload.head_commit is null"; err == nil || err.Error() != want {
		t.Errorf("RenderMap = %v, want %s", err, want)
	}
	_, err = RenderArgs([]string{"train", "{{ .payload.head_commit.id }}"}, data)
	var te *Error
	if !errors.As(err, &te) || te.Name != "args[1]" {
		t.Errorf("RenderArgs = %v, want an *Error named args[1]", err)
	}
}

// TestRenderErrorsSayNoGo runs the failing templates of TestRenderErrors and
// TestRenderErrorsNameThePath again: no message may name a Go type.
func TestRenderErrorsSayNoGo(t *testing.T) {
	t.Parallel()
	data := mustDecode(t, githubPush)
	for _, tpl := range []string{
		"{{ .payload.repository.full_nme }}", "{{ .pull_request.number }}", `{{ index .payload "nope" }}`,
		`{{ index .payload.commits 5 }}`, "{{ .payload.ref.name }}", "{{ .payload.pusher.email.domain }}",
		"{{ .payload.repository.id.Int64 }}", `{{ if eq .payload.size "3" }}x{{ end }}`,
		`{{ index .payload.commits "x" }}`, `{{ index .payload 1 }}`, `{{ index .payload.size 1 }}`,
		`{{ slice .payload.repository 1 }}`, `{{ len .payload.size }}`, `{{ eq .payload.commits .payload.commits }}`,
		`{{ lt .payload.repository 1 }}`, `{{ printf 1 }}`, `{{ .payload.ref "x" }}`, `{{ "x" | .payload.ref }}`,
		`{{ not }}`, `{{ slice .payload.after 5 1 }}`, `{{ index .payload.commits 0 "added" 0 "x" }}`,
	} {
		_, err := Render(tpl, data)
		if err == nil {
			t.Errorf("Render(%q) succeeded", tpl)
			continue
		}
		for _, goism := range []string{"interface {}", "map[", "int64", "float64", "reflect.", "_field", "executing", "template: template"} {
			if strings.Contains(err.Error(), goism) {
				t.Errorf("Render(%q) = %q, which says %q", tpl, err, goism)
			}
		}
	}
}
