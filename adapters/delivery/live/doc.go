// Package live is the real-time channel of the customer profile page (seed
// 001): while a profile is open, the page is told when the customer's step
// results, documents, AI summary or status change, so it reloads instead of
// polling.
//
// The flow is:
//
//  1. The page, already authenticated against the API, asks for a socket
//     token. Tokens.Issue binds it to one customer and the caller and makes
//     it short-lived, because a browser can only pass it in the URL of the
//     WebSocket request, where proxies and access logs may see it.
//  2. The page opens GET /v1/ws?token=... (Socket). The token is checked
//     before the upgrade so a refused page gets an ordinary 401
//     application/problem+json it can act on.
//  3. The Hub follows the global event log from its tail and pushes every
//     event of that customer that the page refreshes on; nothing of any
//     other customer reaches the socket. When the token expires the socket is
//     closed normally and the page asks for a new one.
//
// Messages say what changed, not the new state: the page reloads what it
// shows through the API, which applies the caller's permissions. The event's
// personal part is never sent.
package live
