package scoring

import (
	"context"
	"strings"
)

// routeKind is what a request asks for.
type routeKind int

const (
	routeLive routeKind = iota
	routeReady
	routeBadMethod
	routeInfer
	routeMetadata
	routeModelReady
)

// route is a parsed request path.
type route struct {
	kind    routeKind
	name    string // the deployment
	version string // "" for any version
	// pattern is the route's template, the server span's name.
	pattern string
	allow   string // for routeBadMethod
}

// parseRoute maps a method and path to a route by hand: the V2 paths are
// few, and a 404 or 405 is answered in V2's error shape.
func parseRoute(method, path string) (route, bool) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return route{}, false
	}
	check := func(rt route, want string) (route, bool) {
		if method != want && !(want == "GET" && method == "HEAD") {
			return route{kind: routeBadMethod, allow: want}, true
		}
		return rt, true
	}
	switch rest {
	case "health/live":
		return check(route{kind: routeLive}, "GET")
	case "health/ready":
		return check(route{kind: routeReady}, "GET")
	}
	rest, ok = strings.CutPrefix(rest, "models/")
	if !ok {
		return route{}, false
	}
	parts := strings.Split(rest, "/")
	for _, p := range parts {
		if p == "" {
			return route{}, false
		}
	}
	rt := route{name: parts[0]}
	tail := parts[1:]
	versioned := len(tail) >= 2 && tail[0] == "versions"
	if versioned {
		rt.version = tail[1]
		tail = tail[2:]
	}
	v := ""
	if versioned {
		v = "/versions/{version}"
	}
	switch {
	case len(tail) == 0:
		rt.kind, rt.pattern = routeMetadata, "GET /v2/models/{name}"+v
		return check(rt, "GET")
	case len(tail) == 1 && tail[0] == "ready":
		rt.kind, rt.pattern = routeModelReady, "GET /v2/models/{name}"+v+"/ready"
		return check(rt, "GET")
	case len(tail) == 1 && tail[0] == "infer":
		rt.kind, rt.pattern = routeInfer, "POST /v2/models/{name}"+v+"/infer"
		return check(rt, "POST")
	}
	return route{}, false
}

// reqCtx is what the router knows of one request, from ServeHTTP to the
// upstream call: its route, and the replica serving it now (the retry
// moves it).
type reqCtx struct {
	route string
	rt    route
	// trusted is the caller when the gateway authenticated it (ServeInfer).
	trusted *principal
	dep     *deployment
	// rep is the replica the request is sent to; tried are those it was.
	rep   *replica
	tried int
}

type reqCtxKey struct{}

func withReqCtx(ctx context.Context, rc *reqCtx) context.Context {
	return context.WithValue(ctx, reqCtxKey{}, rc)
}

func fromContext(ctx context.Context) *reqCtx {
	rc, _ := ctx.Value(reqCtxKey{}).(*reqCtx)
	return rc
}
