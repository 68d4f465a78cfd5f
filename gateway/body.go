package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
)

// decodeBody reads a JSON request body strictly into v: see readJSONBody.
// A field v does not have is a 422 naming it.
func decodeBody(c echo.Context, v any) error { return readJSONBody(c, v, true) }

// readJSONBody is the one reader of JSON request bodies (job specs have
// their own, decodeSpec, on the same terms). The body is size-capped
// (limitBody: 413), must be one JSON object with nothing after it (400:
// null, an array, trailing data), and a value of the wrong type is a 422
// naming the field. strict also refuses, with a 422, a field v does not
// have; MLflow's routes are not strict there, as MLflow's own server is not.
func readJSONBody(c echo.Context, v any, strict bool) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	trimmed := bytes.TrimSpace(body)
	switch {
	case len(trimmed) == 0:
		return api.Errorf(api.CodeBadRequest, "request body is empty: send a JSON object")
	case trimmed[0] != '{':
		return api.Errorf(api.CodeBadRequest, "request body must be a JSON object")
	case !utf8.Valid(trimmed):
		// encoding/json would turn the bad bytes into U+FFFD without a word:
		// a binary secret would be stored changed.
		return api.Errorf(api.CodeBadRequest, "request body is not valid UTF-8 (JSON must be); base64-encode binary values")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return api.Errorf(api.CodeInvalid, "%s must be %s", cmpField(te.Field), jsonKind(te.Type.Kind().String()))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return api.Errorf(api.CodeInvalid, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		var se *json.SyntaxError
		if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) {
			return api.Errorf(api.CodeBadRequest, "request body is not valid JSON: %v", err)
		}
		// A value a field's own decoder refuses (a time, an MLflow number).
		return api.Errorf(api.CodeInvalid, "request body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return api.Errorf(api.CodeBadRequest, "request body holds more than one JSON value: send one JSON object and nothing after it")
	}
	return nil
}
