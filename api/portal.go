package api

// PortalSession is GET /ui/session: who the web portal's session acts as,
// and the CSRF token its page sends as X-CSRF-Token on every call that is
// not a GET or HEAD.
type PortalSession struct {
	TokenName string `json:"token_name"`
	// TokenID is the session's token's ID ("" for the system admin), so
	// that the portal does not offer to revoke the token it runs on.
	TokenID   string  `json:"token_id,omitempty"`
	Workspace string  `json:"workspace"`
	Scopes    []Scope `json:"scopes"`
	// System is the system admin token's session: every scope everywhere.
	System    bool   `json:"system"`
	CSRFToken string `json:"csrf_token"`
}

// PortalLogin is the body of POST /ui/login (JSON; a form's field token
// works too).
type PortalLogin struct {
	Token string `json:"token"`
}
