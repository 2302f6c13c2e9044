package live

import (
	"encoding/json"
	"net/http"
)

// problem is an RFC 9457 problem document shaped like the API's own (see
// adapters/httpapi), so a page handles refusals from the socket route and
// from the rest of the API the same way.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

const problemBase = "https://kyc-engine.dev/problems/"

// refuse answers 401. RFC 9110 asks for a challenge on every 401; the token
// comes in the query because browsers cannot set headers on a WebSocket.
func refuse(w http.ResponseWriter, r *http.Request, p problem) {
	p.Status = http.StatusUnauthorized
	w.Header().Set("WWW-Authenticate", `Bearer realm="`+Audience+`"`)
	writeProblem(w, r, p)
}

func writeProblem(w http.ResponseWriter, r *http.Request, p problem) {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	p.Instance = r.URL.Path
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
