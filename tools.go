//go:build tools

// Package tools pins modules used only by tests and tooling so go mod tidy keeps them.
package tools

import (
	_ "github.com/dgraph-io/badger/v4"
	_ "github.com/emiago/sipgo"
	_ "github.com/fiorix/go-smpp/smpp"
	_ "github.com/linxGnu/gosmpp"
	_ "github.com/panjf2000/ants/v2"
	_ "github.com/valyala/fasthttp"
	_ "gopkg.in/yaml.v3"
)
