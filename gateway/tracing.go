package gateway

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// probePaths are the health and readiness probes: not traced (a load
// balancer polls them every few seconds; a span each would be noise).
var probePaths = map[string]bool{"/healthz": true, "/readyz": true}

// traced wraps the API's handler in an OpenTelemetry server span per request
// when Config.TracerProvider is set, continuing a client's W3C traceparent.
// The span is named by the method alone until routing, then by method and
// echo route ("GET /v1/jobs/:id", see nameSpanByRoute); a request no route
// matches keeps the method alone, as the HTTP conventions say. With no
// provider the handler is echo itself: tracing off costs nothing.
func (g *Gateway) traced(h http.Handler) http.Handler {
	tp := g.cfg.TracerProvider
	if tp == nil {
		return h
	}
	return otelhttp.NewHandler(h, "gateway",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithFilter(func(r *http.Request) bool { return !probePaths[r.URL.Path] }),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }),
	)
}

// nameSpanByRoute names the request's server span (traced's) by method and
// echo route once echo has routed it, and sets http.route; echo runs it
// after routing (an e.Use middleware). A request that matched no route (404
// and 405, whose path echo sets to the nearest node's) keeps the method.
func (g *Gateway) nameSpanByRoute(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		span := trace.SpanFromContext(c.Request().Context())
		if span.IsRecording() {
			method, route := c.Request().Method, c.Path()
			if _, ok := g.rules[method+" "+route]; ok {
				span.SetName(method + " " + route)
				span.SetAttributes(semconv.HTTPRoute(route))
			}
		}
		return next(c)
	}
}
