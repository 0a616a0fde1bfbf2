package codec

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrFrameTooLarge is returned by ReadFrame for a length prefix above max.
var ErrFrameTooLarge = errors.New("codec: frame too large")

// AppendFrame appends frame to dst behind a uvarint length prefix, for
// stream transports such as the handset TCP link.
func AppendFrame(dst, frame []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(frame)))
	return append(dst, frame...)
}

// ReadFrame reads one length-prefixed frame written by AppendFrame. It
// returns io.EOF only at a clean frame boundary and io.ErrUnexpectedEOF
// for a truncated frame.
func ReadFrame(r *bufio.Reader, max int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, err // clean end between frames
		}
		return nil, fmt.Errorf("codec: read frame length: %w", err)
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("codec: frame of %d bytes, limit %d: %w", n, max, ErrFrameTooLarge)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("codec: read frame body: %w", err)
	}
	return buf, nil
}
