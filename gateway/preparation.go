package gateway

import (
	"strings"
	"unicode/utf8"

	"jobgate/api"
)

// checkPreparation validates a spec's preparation argv as command is
// validated; an empty list means none.
func checkPreparation(s *api.JobSpec) error {
	if len(s.Preparation) == 0 {
		s.Preparation = nil
		return nil
	}
	if len(s.Preparation) > maxCommandArgs {
		return specErr("preparation has %d elements; at most %d", len(s.Preparation), maxCommandArgs)
	}
	if s.Preparation[0] == "" {
		return specErr("preparation[0] must name the program to run")
	}
	for i, a := range s.Preparation {
		if strings.IndexByte(a, 0) >= 0 || !utf8.ValidString(a) {
			return specErr("preparation[%d] must be valid UTF-8 without NUL bytes", i)
		}
	}
	return nil
}
