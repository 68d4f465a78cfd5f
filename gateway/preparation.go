package gateway

import "github.com/jobgate/jobgate/api"

// checkPreparation validates a spec's preparation argv as command is
// validated; an empty list means none.
func checkPreparation(s *api.JobSpec) error {
	if len(s.Preparation) == 0 {
		s.Preparation = nil
		return nil
	}
	if problem := checkArgv("preparation", s.Preparation); problem != "" {
		return specErr("%s", problem)
	}
	return nil
}
