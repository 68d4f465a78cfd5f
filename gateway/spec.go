package gateway

import (
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/job"
)

// nameRE is what names of jobs, experiments, datastores, triggers and
// schedules may be: the job service's rule.
var nameRE = job.NameRE

// decodeSpec reads a job spec with the API's one strict decoder
// (api.DecodeJobSpecJSON): a body that is not one JSON value is a 400;
// unknown fields, keys given twice and wrong types are a 422 naming the
// field, and so is an input's within, which only the gateway sets.
func decodeSpec(r io.Reader) (api.JobSpec, error) {
	body, err := io.ReadAll(r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return api.JobSpec{}, api.Errorf(api.CodeTooLarge, "request body is larger than %d bytes", mbe.Limit)
		}
		return api.JobSpec{}, api.Errorf(api.CodeBadRequest, "read body: %v", err)
	}
	spec, err := api.DecodeJobSpecJSON(body)
	var se *api.SpecError
	switch {
	case err == nil:
		for _, name := range slices.Sorted(maps.Keys(spec.Inputs)) {
			if spec.Inputs[name].Within != nil {
				return spec, specErr("inputs.%s.within is the gateway's to set (on a child submitted with a job token); leave it out", name)
			}
		}
		return spec, nil
	case errors.As(err, &se) && se.Syntax:
		return spec, api.Errorf(api.CodeBadRequest, "request body: %s", se.Msg)
	}
	return spec, specErr("%v", err)
}

func cmpField(f string) string {
	if f == "" {
		return "the body"
	}
	return f
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int64", "float64":
		return "a number"
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return goKind
}

func specErr(format string, args ...any) *api.Error {
	return api.Errorf(api.CodeInvalidSpec, format, args...)
}
