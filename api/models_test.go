package api

import "testing"

func TestParseModelRef(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, ref string
		want      ModelRef
		bad       bool
	}{
		{name: "version", ref: "iris:2", want: ModelRef{Name: "iris", Version: 2}},
		{name: "alias", ref: "iris@production", want: ModelRef{Name: "iris", Alias: "production"}},
		{name: "dotted name", ref: "my.model-1:10", want: ModelRef{Name: "my.model-1", Version: 10}},
		{name: "bare name", ref: "iris", bad: true},
		{name: "version zero", ref: "iris:0", bad: true},
		{name: "negative", ref: "iris:-1", bad: true},
		{name: "leading zero", ref: "iris:01", bad: true},
		{name: "not a number", ref: "iris:two", bad: true},
		{name: "no name", ref: ":1", bad: true},
		{name: "no alias", ref: "iris@", bad: true},
		{name: "numeric alias", ref: "iris@2", bad: true},
		{name: "both", ref: "iris:2@prod", bad: true},
		{name: "slash", ref: "a/b:1", bad: true},
		{name: "two colons", ref: "iris:1:2", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseModelRef(tt.ref)
			if tt.bad {
				if err == nil {
					t.Fatalf("ParseModelRef(%q) = %+v, want an error", tt.ref, got)
				}
				return
			}
			if err != nil || got != tt.want || got.String() != tt.ref {
				t.Fatalf("ParseModelRef(%q) = %+v (%s), %v; want %+v", tt.ref, got, got, err, tt.want)
			}
		})
	}
}
