package codec

import (
	_ "embed"
	"encoding/binary"
	"fmt"
)

// Priming data of format version 3 (part of the wire format), made by
// TestTrainV3 (train_test.go) from the tuned corpus families only: per
// profile, a dictionary of frequent text and prototype messages.
var (
	//go:embed dict3/sipc.dict
	dictSIPC []byte
	//go:embed dict3/sip.dict
	dictSIP []byte
	//go:embed dict3/sipc.proto
	protoSIPC []byte
	//go:embed dict3/sip.proto
	protoSIP []byte

	dict3 = [nProfiles][]byte{profSIPC: dictSIPC, profSIP: dictSIP}
)

func prototypes3(prof int) [][]byte {
	b := protoSIPC
	if prof == profSIP {
		b = protoSIP
	}
	msgs, err := splitFrames(b)
	if err != nil {
		panic(fmt.Sprintf("codec: prototypes of profile %d: %v", prof, err))
	}
	return msgs
}

// splitFrames splits AppendFrame output.
func splitFrames(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, fmt.Errorf("truncated frame list")
		}
		out = append(out, b[k:k+int(n)])
		b = b[k+int(n):]
	}
	return out, nil
}
