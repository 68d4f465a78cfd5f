package api

import (
	"net/http"
	"testing"
)

// TestCodesHaveStatuses: every code is in the table with a 4xx or 5xx, and
// a code outside the set answers 500 rather than a status of chance.
func TestCodesHaveStatuses(t *testing.T) {
	if len(Codes()) < 10 {
		t.Fatalf("Codes() = %d codes; the table lost some", len(Codes()))
	}
	for _, c := range Codes() {
		if s := c.Status(); s < 400 || s > 599 {
			t.Errorf("%s: status %d, want 4xx or 5xx", c, s)
		}
	}
	if s := Code("no_such_code").Status(); s != http.StatusInternalServerError {
		t.Errorf("unknown code: status %d, want 500", s)
	}
	if got := Errorf(CodeNotFound, "job %s", "x").Error(); got != "not_found: job x" {
		t.Errorf("Error() = %q", got)
	}
}
