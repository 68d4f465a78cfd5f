package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// principal is who a request acts as.
type principal struct {
	Workspace string
	TokenName string
}

const principalKey = "jobgate.principal"

// DefaultWorkspace holds everything the admin token creates.
const DefaultWorkspace = "default"

// authenticate checks the bearer token. Hashes are compared in constant time,
// so the comparison leaks neither the token nor its length.
func (g *Gateway) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	want := sha256.Sum256([]byte(g.cfg.AdminToken))
	return func(c echo.Context) error {
		h := c.Request().Header.Get("Authorization")
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || tok == "" {
			return errorf(http.StatusUnauthorized, CodeUnauthorized, "missing bearer token: send Authorization: Bearer <token>")
		}
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return errorf(http.StatusUnauthorized, CodeUnauthorized, "invalid bearer token")
		}
		c.Set(principalKey, principal{Workspace: DefaultWorkspace, TokenName: "admin"})
		return next(c)
	}
}

func principalOf(c echo.Context) principal {
	p, _ := c.Get(principalKey).(principal)
	return p
}
