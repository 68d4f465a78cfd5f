package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/goccy/go-yaml"
	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
)

// openAPIDoc is the API's OpenAPI document in one encoding, with its ETag.
type openAPIDoc struct {
	body, etag, contentType string
}

func newOpenAPIDoc(body []byte, contentType string) openAPIDoc {
	sum := sha256.Sum256(body)
	return openAPIDoc{body: string(body), etag: `"` + hex.EncodeToString(sum[:16]) + `"`, contentType: contentType}
}

// openAPIDocs are the embedded YAML and it as JSON, made once.
var openAPIDocs = sync.OnceValues(func() (map[string]openAPIDoc, error) {
	js, err := yaml.YAMLToJSON(api.OpenAPIYAML())
	if err != nil {
		return nil, fmt.Errorf("openapi document as JSON: %w", err)
	}
	return map[string]openAPIDoc{
		"json": newOpenAPIDoc(js, echo.MIMEApplicationJSON),
		"yaml": newOpenAPIDoc(api.OpenAPIYAML(), "application/yaml"),
	}, nil
})

// openAPI serves GET /v1/openapi.json and /v1/openapi.yaml, without a
// token: the document describes the API, nothing of a workspace. Clients
// revalidate with the ETag (no-cache), so an upgraded gateway's document
// is seen at once.
func (g *Gateway) openAPI(format string) echo.HandlerFunc {
	return func(c echo.Context) error {
		docs, err := openAPIDocs()
		if err != nil {
			return err
		}
		doc := docs[format]
		h := c.Response().Header()
		h.Set("ETag", doc.etag)
		h.Set("Cache-Control", "no-cache")
		for _, tag := range strings.Split(c.Request().Header.Get("If-None-Match"), ",") {
			if t := strings.TrimSpace(tag); t == doc.etag || t == "*" {
				return c.NoContent(http.StatusNotModified)
			}
		}
		return c.Blob(http.StatusOK, doc.contentType, []byte(doc.body))
	}
}
