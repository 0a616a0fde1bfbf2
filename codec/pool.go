package codec

import "sync"

// The stateless helpers borrow encoders and decoders: each holds a copy of
// the primed history and (encoders) a match index, so building one per
// message would dominate the cost. The pools are caches only; no
// behaviour depends on them.
var (
	encPool = sync.Pool{New: func() any { return NewEncoder(false) }}
	decPool = sync.Pool{New: func() any { return NewDecoder(false) }}
)

// Encode appends the stateless MCP frame of msg to dst.
func Encode(dst, msg []byte) ([]byte, error) {
	e := encPool.Get().(*Encoder)
	defer encPool.Put(e)
	return e.Encode(dst, msg)
}

// Decode appends the message carried by the stateless frame to dst.
func Decode(dst, frame []byte) ([]byte, error) {
	d := decPool.Get().(*Decoder)
	defer decPool.Put(d)
	return d.Decode(dst, frame)
}
