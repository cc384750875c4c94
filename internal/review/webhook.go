package review

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the request
// body under the webhook's secret.
const SignatureHeader = "X-Gatehouse-Signature"

// Webhook formats.
const (
	FormatJSON  = "json"
	FormatSlack = "slack"
)

// Webhook posts every review change to a URL: a JSON document (FormatJSON)
// or a Slack incoming-webhook message (FormatSlack), signed with
// SignatureHeader. Failed deliveries (network errors, 429 and 5xx) are
// retried with exponential backoff; deliveries run in order on one
// goroutine and never hold up a review.
type Webhook struct {
	URL    string
	Secret []byte
	Format string
	// PublicURL is the gateway's API address as reviewers reach it, for
	// links in messages ("" leaves links out).
	PublicURL string
	Client    *http.Client
	Log       *slog.Logger
	// Attempts is how many times a delivery is tried (default 5);
	// Backoff the wait before the first retry, doubling after each
	// (default 1 s).
	Attempts int
	Backoff  time.Duration

	once  sync.Once
	queue chan delivery
	done  chan struct{}
	stop  context.CancelFunc
}

type delivery struct {
	body  []byte
	event string
}

// maxQueued bounds deliveries waiting; beyond it new ones are dropped with
// a logged warning (the audit log holds every change regardless).
const maxQueued = 1000

func (w *Webhook) start() {
	w.once.Do(func() {
		if w.Client == nil {
			w.Client = &http.Client{Timeout: 10 * time.Second}
		}
		if w.Log == nil {
			w.Log = slog.Default()
		}
		if w.Attempts <= 0 {
			w.Attempts = 5
		}
		if w.Backoff <= 0 {
			w.Backoff = time.Second
		}
		var ctx context.Context
		ctx, w.stop = context.WithCancel(context.Background())
		w.queue, w.done = make(chan delivery, maxQueued), make(chan struct{})
		go w.run(ctx)
	})
}

// Close stops delivering once the queue is empty or ctx ends.
func (w *Webhook) Close(ctx context.Context) {
	w.start()
	close(w.queue)
	select {
	case <-w.done:
	case <-ctx.Done():
		w.stop()
		<-w.done
	}
}

// Notify implements Notifier.
func (w *Webhook) Notify(r Review, change string) {
	w.start()
	body, err := w.Body(r, change)
	if err != nil {
		w.Log.Error("review webhook: encode", "review", r.ID, "err", err)
		return
	}
	select {
	case w.queue <- delivery{body: body, event: "review." + change}:
	default:
		w.Log.Warn("review webhook: queue full; notification dropped", "review", r.ID, "change", change)
	}
}

// Payload is the JSON document of FormatJSON.
type Payload struct {
	Event   string    `json:"event"` // review.requested, review.approved …
	Time    time.Time `json:"time"`
	Review  Review    `json:"review"`
	Approve string    `json:"approve,omitempty"` // the command that approves
	Deny    string    `json:"deny,omitempty"`
	URL     string    `json:"url,omitempty"`
}

// Body returns the request body for a change.
func (w *Webhook) Body(r Review, change string) ([]byte, error) {
	r.Match = "" // a hash of the statement tells a receiver nothing useful
	p := Payload{Event: "review." + change, Time: time.Now().UTC(), Review: r, URL: w.link(r)}
	if r.State == Pending {
		p.Approve = "gatehouse reviews approve " + r.ID
		p.Deny = "gatehouse reviews deny " + r.ID + ` --reason "…"`
	}
	if w.Format == FormatSlack {
		return json.Marshal(map[string]string{"text": slackText(p)})
	}
	return json.Marshal(p)
}

func (w *Webhook) link(r Review) string {
	if w.PublicURL == "" {
		return ""
	}
	return strings.TrimRight(w.PublicURL, "/") + "/api/v1/reviews/" + url.PathEscape(r.ID)
}

// slackText is the message of a change in Slack's mrkdwn.
func slackText(p Payload) string {
	r := p.Review
	var b strings.Builder
	switch r.Kind {
	case KindAccess:
		fmt.Fprintf(&b, "*Review %s* (%s): %s asks for access to *%s* for %s", r.ID, r.State, r.Requester, r.Connection, r.Window)
	default:
		fmt.Fprintf(&b, "*Review %s* (%s): %s on *%s* waits to run:\n```%s```", r.ID, r.State, r.Requester, r.Connection, r.Command)
	}
	if r.Reason != "" {
		fmt.Fprintf(&b, "\nReason: %s", r.Reason)
	}
	if r.Outcome != "" {
		fmt.Fprintf(&b, "\n%s", r.Outcome)
	}
	if p.Approve != "" {
		who := "an admin"
		if len(r.Approvers) > 0 {
			who = "a member of " + strings.Join(r.Approvers, ", ")
		}
		fmt.Fprintf(&b, "\nNeeds %d approval(s) from %s, by %s.\nApprove: `%s`\nDeny: `%s`", r.Quorum, who,
			r.Expires.UTC().Format(time.RFC3339), p.Approve, p.Deny)
	}
	if p.URL != "" {
		fmt.Fprintf(&b, "\n<%s|Open review %s>", p.URL, r.ID)
	}
	return b.String()
}

// Sign returns the SignatureHeader value for body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature reports whether header is body's signature under secret,
// comparing in constant time.
func VerifySignature(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(header), []byte(Sign(secret, body)))
}

func (w *Webhook) run(ctx context.Context) {
	defer close(w.done)
	for d := range w.queue {
		w.deliver(ctx, d)
	}
}

// deliver posts one body, retrying failures that may pass.
func (w *Webhook) deliver(ctx context.Context, d delivery) {
	wait := w.Backoff
	for attempt := 1; ; attempt++ {
		retry, err := w.post(ctx, d)
		if err == nil {
			return
		}
		if !retry || attempt == w.Attempts {
			w.Log.Error("review webhook: delivery failed", "event", d.event, "attempt", attempt, "err", err)
			return
		}
		w.Log.Warn("review webhook: delivery failed; retrying", "event", d.event, "attempt", attempt, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func (w *Webhook) post(ctx context.Context, d delivery) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(d.body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gatehouse-review-webhook")
	req.Header.Set("X-Gatehouse-Event", d.event)
	req.Header.Set(SignatureHeader, Sign(w.Secret, d.body))
	resp, err := w.Client.Do(req)
	if err != nil {
		return true, redactURL(err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("receiver answered %s", resp.Status)
	}
	return false, fmt.Errorf("receiver answered %s", resp.Status)
}

// redactURL drops the URL from a client error: a Slack webhook URL is
// itself a secret.
func redactURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
