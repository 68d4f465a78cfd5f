package gateway

import (
	"bytes"
	"errors"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
)

// Inferer serves a V2 inference request for a caller the gateway has
// authenticated in workspace ws (scoring.Router.ServeInfer).
type Inferer interface {
	ServeInfer(w http.ResponseWriter, req *http.Request, ws string)
}

// inferDeployment is POST /v1/deployments/:name/infer, the portal's "try
// it": the body, at most MaxBodyBytes, goes to the deployment as a V2
// inference request through the in-process scoring router
// (Config.Scoring), and its answer comes back as the router gives it.
// It takes the submit scope, not read: an inference runs the deployment's
// code on the cluster's machines, as a submitted job does, and a model
// server may act on what it is sent.
func (g *Gateway) inferDeployment(c echo.Context) error {
	ctx := c.Request().Context()
	ws := principalOf(c).Workspace
	d, _, err := g.deployment(ctx, ws, c.Param("name"))
	if err != nil {
		return err
	}
	if g.cfg.Scoring == nil {
		return api.Errorf(api.CodeUnavailable, "no scoring router configured: this gateway does not serve /v2 (use the scoring router's own address)")
	}
	body, err := io.ReadAll(c.Request().Body)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return api.Errorf(api.CodeTooLarge, "request body is larger than %d bytes", g.cfg.MaxBodyBytes)
	case err != nil:
		return api.Errorf(api.CodeBadRequest, "read the request body: the client stopped sending it")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/v2/models/"+d.Spec.Name+"/infer", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	g.cfg.Scoring.ServeInfer(c.Response(), req, ws)
	return nil
}
