package api

import _ "embed"

// openAPIYAML is the OpenAPI 3.1 document of /v1 and /hooks. Its paths are
// written by hand; its components.schemas, between the GENERATED markers,
// are written from the Go types by
//
//	go test ./gateway -run TestOpenAPISchemas -update-openapi
//
// and that test fails while they are stale.
//
//go:embed openapi.yaml
var openAPIYAML []byte

// OpenAPIYAML is the OpenAPI document as YAML. The caller must not modify it.
func OpenAPIYAML() []byte { return openAPIYAML }
