package pgwire

import (
	"io"
)

// Chunker reads a stream of protocol messages and returns it as runs of
// bytes ready to forward, showing every frame to a visitor on the way.
// Frames for which Hold returns true are always shown whole (up to Limit
// bytes; a larger one is a *TooLargeError); all others stream through: a
// DataRow or CopyData larger than the buffer is forwarded in pieces and
// shown once, by its first piece, with whole=false. A run returned by Next
// is valid until the next call. Nothing is allocated per message.
type Chunker struct {
	r     io.Reader
	buf   []byte
	start int // first byte not yet returned
	end   int // end of buffered data
	// stream counts the bytes still to come of a frame that is being
	// forwarded in pieces.
	stream int
	// Hold says which message types must be seen whole.
	Hold func(typ byte) bool
	// Limit caps a held frame's size.
	Limit int
	size  int
}

// NewChunker reads from r with a buffer of size bytes.
func NewChunker(r io.Reader, size, limit int, hold func(byte) bool) *Chunker {
	return &Chunker{r: r, buf: make([]byte, size), size: size, Limit: limit, Hold: hold}
}

// Visitor sees one frame (or the first piece of a streamed one).
type Visitor func(frame []byte, whole bool) error

// Next returns the next run of complete bytes. It reads at most once per
// call when nothing is buffered. The visitor is called for each frame that
// starts in the run, in order; an error from it stops Next, returning the
// bytes before that frame with the error.
func (c *Chunker) Next(visit Visitor) ([]byte, error) {
	for {
		out, err := c.scan(visit)
		if len(out) > 0 || err != nil {
			return out, err
		}
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
}

// Discard drops the frame whose visit returned the error Next just
// reported; the caller sends something else in its place. Only a held
// frame, which the visitor always sees whole, can be discarded.
func (c *Chunker) Discard() {
	_, total, ok := Header(c.buf[c.start:c.end])
	if !ok || !c.Hold(c.buf[c.start]) || total > c.end-c.start {
		panic("pgwire: Discard without a whole held frame")
	}
	c.start += total
}

// Ready reports whether Next can return something without reading: a
// whole frame, or more of one being forwarded in pieces, is buffered.
func (c *Chunker) Ready() bool {
	if c.stream > 0 {
		return c.end > c.start
	}
	_, total, ok := Header(c.buf[c.start:c.end])
	return ok && total <= c.end-c.start
}

// Buffered reports how many bytes are read but not yet returned.
func (c *Chunker) Buffered() int { return c.end - c.start }

// AtBoundary reports whether everything returned so far ends on a message
// boundary, so the reader's peer may be sent a message of the gateway's
// own without corrupting the stream.
func (c *Chunker) AtBoundary() bool { return c.stream == 0 && c.start == c.end }

func (c *Chunker) scan(visit Visitor) ([]byte, error) {
	pos := c.start
	if c.stream > 0 {
		n := min(c.stream, c.end-pos)
		pos += n
		c.stream -= n
	}
	var err error
	for c.stream == 0 {
		typ, total, ok := Header(c.buf[pos:c.end])
		if !ok {
			break
		}
		hold := c.Hold(typ)
		limit := c.Limit
		if !hold {
			limit = int(^uint32(0)>>1) + 1
		}
		if err = CheckLength(typ, total, limit); err != nil {
			break
		}
		avail := c.end - pos
		if avail >= total {
			if err = visit(c.buf[pos:pos+total], true); err != nil {
				break
			}
			pos += total
			continue
		}
		if hold {
			// Return what is ready first; make room once nothing is
			// pending, so no returned byte moves.
			if pos == c.start {
				c.need(total)
				pos = c.start
			}
			break
		}
		if err = visit(c.buf[pos:c.end], false); err != nil {
			break
		}
		c.stream = total - avail
		pos = c.end
	}
	out := c.buf[c.start:pos]
	c.start = pos
	return out, err
}

// need makes room for a held frame of total bytes starting at c.start.
func (c *Chunker) need(total int) {
	if total <= len(c.buf)-c.start {
		return
	}
	if total > len(c.buf) {
		nb := make([]byte, max(total, 2*len(c.buf)))
		c.end = copy(nb, c.buf[c.start:c.end])
		c.buf, c.start = nb, 0
		return
	}
	c.end = copy(c.buf, c.buf[c.start:c.end])
	c.start = 0
}

func (c *Chunker) fill() error {
	if c.start == c.end {
		c.start, c.end = 0, 0
		if len(c.buf) > 4*c.size { // give back a buffer grown for one big frame
			c.buf = make([]byte, c.size)
		}
	} else if c.end == len(c.buf) {
		// A partial header or held frame sits at the end: move it down.
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	}
	n, err := c.r.Read(c.buf[c.end:])
	c.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	if err == io.EOF && c.end > c.start {
		err = io.ErrUnexpectedEOF
	}
	return err
}
