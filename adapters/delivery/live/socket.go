package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// SocketOptions tune the socket; the zero value is the default for each.
type SocketOptions struct {
	// OriginPatterns lists the page origins allowed to open the socket
	// besides the API's own host (websocket.AcceptOptions.OriginPatterns).
	// Empty means same-origin only, the library's default, which is what
	// keeps another site's script from riding on a user's token.
	OriginPatterns []string
	// Buffer is how many pushes may wait for one socket (default 64). A
	// socket that falls further behind is closed rather than slowing the
	// hub; the page reconnects and reloads, losing nothing it shows.
	Buffer int
	// PingInterval is how often an idle socket is pinged (default 30s), so
	// proxies that cut quiet connections (often after 60s) keep it, and a
	// vanished peer is noticed.
	PingInterval time.Duration
	// WriteTimeout bounds one write or one ping's wait for its pong
	// (default 10s).
	WriteTimeout time.Duration
	// Log receives connection errors; nil discards them.
	Log *slog.Logger
}

const (
	defaultBuffer       = 64
	defaultPingInterval = 30 * time.Second
	defaultWriteTimeout = 10 * time.Second
	// clientReadLimit bounds what a client may send; it should send nothing,
	// and what it sends is discarded.
	clientReadLimit = 4096
)

// Socket is the http.Handler of GET /v1/ws?token=...[&customer_id=...].
// An accepted socket says "subscribed" only once Hub.Run follows the log, so
// the hub must be running for pages to get anything.
type Socket struct {
	hub    *Hub
	tokens *Tokens
	opts   SocketOptions
	log    *slog.Logger
}

// NewSocket returns the handler serving hub's pushes to holders of tokens.
func NewSocket(hub *Hub, tokens *Tokens, opts SocketOptions) (*Socket, error) {
	switch {
	case hub == nil:
		return nil, errors.New("live: socket needs a hub")
	case tokens == nil:
		return nil, errors.New("live: socket needs tokens")
	case opts.Buffer < 0, opts.PingInterval < 0, opts.WriteTimeout < 0:
		return nil, fmt.Errorf("live: negative socket option (buffer %d, ping %s, write timeout %s)",
			opts.Buffer, opts.PingInterval, opts.WriteTimeout)
	}
	if opts.Buffer == 0 {
		opts.Buffer = defaultBuffer
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = defaultPingInterval
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = defaultWriteTimeout
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts.OriginPatterns = append([]string(nil), opts.OriginPatterns...)
	return &Socket{hub: hub, tokens: tokens, opts: opts, log: log}, nil
}

// ServeHTTP checks the token before upgrading, so a refused page gets a
// problem document it can read instead of a failed handshake it cannot.
func (s *Socket) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeProblem(w, r, problem{Type: problemBase + "method-not-allowed", Status: http.StatusMethodNotAllowed,
			Detail: "open the live socket with GET"})
		return
	}
	q := r.URL.Query()
	claims, err := s.tokens.Verify(q.Get("token"))
	if err != nil {
		s.log.Debug("live: socket token refused", "err", err)
		refuse(w, r, tokenProblem(err))
		return
	}
	if want := q.Get("customer_id"); want != "" && want != claims.CustomerID {
		refuse(w, r, problem{Type: problemBase + "socket-token-other-customer", Title: "Socket token is for another customer",
			Detail: "the socket token was issued for a different customer than customer_id; ask for a token for this customer"})
		return
	}
	if s.hub.isStopped() {
		writeProblem(w, r, problem{Type: problemBase + "live-unavailable", Title: "Live updates unavailable",
			Status: http.StatusServiceUnavailable, Detail: "the server is shutting down; reconnect shortly"})
		return
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.opts.OriginPatterns})
	if err != nil {
		// Accept has answered the request (bad handshake, foreign origin).
		s.log.Debug("live: websocket upgrade refused", "err", err)
		return
	}
	s.serve(r.Context(), conn, claims)
}

// serve pushes the customer's messages until the peer leaves, the token
// expires, the hub drops the socket or the hub stops.
func (s *Socket) serve(ctx context.Context, conn *websocket.Conn, claims Claims) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// Deferred in reverse: close the connection, which ends the reader and
	// the pinger, then wait for them.
	defer wg.Wait()
	defer cancel()
	defer conn.CloseNow()

	sub, err := s.hub.subscribe(claims.CustomerID, s.opts.Buffer)
	if err != nil {
		conn.Close(websocket.StatusGoingAway, "server shutting down; reconnect")
		return
	}
	defer s.hub.unsubscribe(sub)

	conn.SetReadLimit(clientReadLimit)
	// The reader must run for ping, pong and close frames to be handled; it
	// also notices a peer that went away.
	wg.Go(func() {
		defer cancel()
		for {
			_, rd, err := conn.Reader(ctx)
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, rd); err != nil {
				return
			}
		}
	})
	wg.Go(func() {
		defer cancel()
		s.keepAlive(ctx, conn)
	})

	// The token's own clock decides how long is left, so it agrees with
	// Verify; the wait itself is real time.
	expiry := time.NewTimer(claims.Expires.Sub(s.tokens.now()))
	defer expiry.Stop()

	// Say "subscribed" only once the hub follows the log; before that, an
	// event could land behind the tail the hub is about to start from.
	select {
	case <-s.hub.following:
	case <-ctx.Done():
		return
	case <-sub.gone:
		conn.Close(sub.code, sub.reason)
		return
	}
	hello, err := json.Marshal(Subscribed{Type: KindSubscribed, CustomerID: claims.CustomerID, ExpiresAt: claims.Expires.UTC()})
	if err != nil {
		conn.Close(websocket.StatusInternalError, "cannot encode")
		return
	}
	if err := s.write(ctx, conn, hello); err != nil {
		return
	}
	for {
		// A drop wins over queued messages: they are stale once the hub
		// gave up on this socket.
		select {
		case <-sub.gone:
			conn.Close(sub.code, sub.reason)
			return
		default:
		}
		select {
		case <-ctx.Done():
			return
		case <-sub.gone:
			conn.Close(sub.code, sub.reason)
			return
		case <-expiry.C:
			conn.Close(websocket.StatusNormalClosure, "token expired; ask for a new one")
			return
		case msg := <-sub.send:
			if err := s.write(ctx, conn, msg); err != nil {
				s.log.Debug("live: write failed", "customer_id", claims.CustomerID, "err", err)
				return
			}
		}
	}
}

func (s *Socket) write(ctx context.Context, conn *websocket.Conn, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.WriteTimeout)
	defer cancel()
	return conn.Write(ctx, websocket.MessageText, msg)
}

// keepAlive pings until ctx ends or a pong does not come back in time.
func (s *Socket) keepAlive(ctx context.Context, conn *websocket.Conn) {
	t := time.NewTicker(s.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, s.opts.WriteTimeout)
		err := conn.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Debug("live: ping failed; closing", "err", err)
			}
			return
		}
	}
}

func tokenProblem(err error) problem {
	switch {
	case errors.Is(err, ErrTokenMissing):
		return problem{Type: problemBase + "socket-token-missing", Title: "Socket token missing",
			Detail: "pass the token from the socket token endpoint as the token query parameter"}
	case errors.Is(err, ErrTokenExpired):
		return problem{Type: problemBase + "socket-token-expired", Title: "Socket token expired",
			Detail: "ask for a new socket token and reconnect"}
	default:
		return problem{Type: problemBase + "socket-token-invalid", Title: "Socket token invalid",
			Detail: "the socket token is not one this server issued for the live socket"}
	}
}
