// Package openapicheck checks a running gateway against its OpenAPI
// document (api/openapi.yaml): Wrap validates every request and answer of
// /v1 and /hooks that passes through it, and reports each mismatch to a
// test. The gateway's tests and the end-to-end suite serve through it, so
// the document cannot drift from the code unnoticed.
package openapicheck

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/felixge/httpsnoop"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/jobgate/jobgate/api"
)

// Sink is where mismatches go: a *testing.T, or anything with Errorf.
type Sink interface {
	Errorf(format string, args ...any)
}

// maxBody is as much of a body as is kept to validate; a longer one is
// passed on whole and its validation skipped.
const maxBody = 4 << 20

// Checker validates against the document; one is safe for concurrent use.
type Checker struct {
	doc    *openapi3.T
	router routers.Router
	// tails are the paths whose last parameter holds slashes (an artifact's
	// path): the router matches one segment, so the tail is escaped first.
	tails []*regexp.Regexp
	mu    sync.Mutex
	sink  Sink
}

var (
	loadOnce sync.Once
	loaded   *Checker
	loadErr  error
)

// New is a Checker of api/openapi.yaml that reports to sink.
func New(sink Sink) (*Checker, error) {
	loadOnce.Do(func() { loaded, loadErr = load() })
	if loadErr != nil {
		return nil, loadErr
	}
	return &Checker{doc: loaded.doc, router: loaded.router, tails: loaded.tails, sink: sink}, nil
}

func load() (*Checker, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPIYAML())
	if err != nil {
		return nil, fmt.Errorf("openapicheck: load the document: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapicheck: the document is not valid: %w", err)
	}
	// Match any host and port: tests listen where they can.
	doc.Servers = openapi3.Servers{{URL: "/"}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("openapicheck: route the document: %w", err)
	}
	c := &Checker{doc: doc, router: router}
	for path := range doc.Paths.Map() {
		if prefix, ok := strings.CutSuffix(path, "/{path}"); ok {
			segs := strings.Split(prefix, "/")
			for i, seg := range segs {
				if strings.HasPrefix(seg, "{") {
					segs[i] = "[^/]+"
				} else {
					segs[i] = regexp.QuoteMeta(seg)
				}
			}
			c.tails = append(c.tails, regexp.MustCompile("^("+strings.Join(segs, "/")+"/)(.*)$"))
		}
	}
	return c, nil
}

// Checked reports whether the document covers path's part of the API.
func Checked(path string) bool {
	return strings.HasPrefix(path, "/v1/") || strings.HasPrefix(path, "/hooks/")
}

// Wrap serves next, validating what passes through for /v1 and /hooks.
func (c *Checker) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Echo's router answers OPTIONS for every path; it is no operation.
		if !Checked(r.URL.Path) || r.Method == http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		c.serve(next, w, r)
	})
}

func (c *Checker) fail(r *http.Request, status int, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sink.Errorf("openapi: %s %s -> %d: %s", r.Method, r.URL.RequestURI(), status, fmt.Sprintf(format, args...))
}

// streamed reports whether a body of this type is a stream, whose content
// is not validated (only that the document names the type).
func streamed(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt != "application/json"
}

func (c *Checker) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	// The request's body, kept (up to maxBody) to validate after the
	// handler has read it as sent.
	var reqBody []byte
	reqBodyKept := false
	if r.Body != nil && r.Body != http.NoBody && !streamed(r.Header.Get("Content-Type")) {
		buf, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		rest := r.Body
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), rest), rest}
		if err == nil && len(buf) <= maxBody {
			reqBody, reqBodyKept = buf, true
		}
	}
	var (
		status    int
		respBody  bytes.Buffer
		respOver  bool
		respTyped string
	)
	hooked := httpsnoop.Wrap(w, httpsnoop.Hooks{
		WriteHeader: func(next httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc {
			return func(code int) {
				if status == 0 && code >= 200 {
					status, respTyped = code, w.Header().Get("Content-Type")
				}
				next(code)
			}
		},
		Write: func(next httpsnoop.WriteFunc) httpsnoop.WriteFunc {
			return func(b []byte) (int, error) {
				if status == 0 {
					status, respTyped = http.StatusOK, w.Header().Get("Content-Type")
				}
				if !respOver && !streamed(respTyped) {
					if respBody.Len()+len(b) > maxBody {
						respOver = true
					} else {
						respBody.Write(b)
					}
				}
				return next(b)
			}
		},
	})
	next.ServeHTTP(hooked, r)
	if status == 0 {
		status = http.StatusOK
	}
	c.check(r, reqBody, reqBodyKept, status, w.Header(), respTyped, respBody.Bytes(), respOver)
}

// routeRequest is r as the router matches it: a tail parameter's slashes
// escaped, so that it is one segment.
func (c *Checker) routeRequest(r *http.Request) *http.Request {
	for _, re := range c.tails {
		if m := re.FindStringSubmatch(r.URL.Path); m != nil {
			u := *r.URL
			if m[2] == "" {
				// The route takes an empty tail too (and answers it 400);
				// the router needs a segment.
				m[2] = "-"
				u.Path = m[1] + m[2]
			}
			u.RawPath = escapePath(m[1]) + url.PathEscape(m[2])
			rr := r.Clone(r.Context())
			rr.URL = &u
			return rr
		}
	}
	return r
}

func escapePath(p string) string {
	u := url.URL{Path: p}
	return u.EscapedPath()
}

func (c *Checker) check(r *http.Request, reqBody []byte, reqBodyKept bool, status int, header http.Header, respType string, respBody []byte, respOver bool) {
	rr := c.routeRequest(r)
	route, params, err := c.router.FindRoute(rr)
	if err != nil {
		// The router's own 404 and 405 answer a path or method that is not
		// the API's: a test may ask for one on purpose.
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			c.fail(r, status, "the route is not in the OpenAPI document: %v", err)
		}
		return
	}
	ctx := context.Background()
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		SkipSettingDefaults:   true,
		MultiError:            true,
	}
	reqOpts := *opts
	if !reqBodyKept {
		reqOpts.ExcludeRequestBody = true
	}
	if reqBodyKept {
		rr.Body = io.NopCloser(bytes.NewReader(reqBody))
	} else {
		rr.Body = http.NoBody
	}
	in := &openapi3filter.RequestValidationInput{Request: rr, PathParams: params, Route: route, Options: &reqOpts}
	// A request the document refuses must not be accepted; one that the
	// gateway refused is a test of that refusal.
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil && status < 400 {
		c.fail(r, status, "the gateway accepted a request the document refuses: %v", err)
	}
	if !reqBodyKept && r.Body != nil && r.Body != http.NoBody {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "" && status < 400 && !documentsRequestType(route.Operation, mt) {
			c.fail(r, status, "request Content-Type %q is not in the document", mt)
		}
	}
	respOpts := *opts
	respOpts.ExcludeResponseBody = respOver || streamed(respType) || len(respBody) == 0
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(respBody)),
		Options:                &respOpts,
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		c.fail(r, status, "the answer does not match the document: %v", err)
		return
	}
	if respOpts.ExcludeResponseBody && respType != "" && status != http.StatusNotModified {
		if mt, _, _ := mime.ParseMediaType(respType); !documentsResponseType(route.Operation, status, mt) {
			c.fail(r, status, "answer Content-Type %q is not in the document", mt)
		}
	}
}

func documentsRequestType(op *openapi3.Operation, mediaType string) bool {
	if op.RequestBody == nil || op.RequestBody.Value == nil {
		return false
	}
	return op.RequestBody.Value.Content.Get(mediaType) != nil
}

func documentsResponseType(op *openapi3.Operation, status int, mediaType string) bool {
	resp := op.Responses.Status(status)
	if resp == nil {
		resp = op.Responses.Default()
	}
	if resp == nil || resp.Value == nil {
		return false
	}
	return resp.Value.Content.Get(mediaType) != nil
}
