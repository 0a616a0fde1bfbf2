// Command smscsim is an SMSC simulator for labs and docker-compose: an SMPP
// 3.4 server (package smpp's server role) that accepts binds from one
// account, answers every submit_sm, data_sm and deliver_sm with status 0 and
// a fresh message id, and logs each one. It is the SMSC the bridge binds to
// with --smsc smpp://SYSTEM_ID:PASSWORD@HOST:PORT.
//
//	smscsim --listen :2776 --system-id bridge --password secret
//
// Message text is logged only at --log-level debug: at info the log says
// who sent what to whom, not what it said.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/smsbridge/bridge/smpp"
	"github.com/smsbridge/bridge/smstext"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "smscsim:", err)
		os.Exit(2)
	}
}

// options are the command's flags.
type options struct {
	listen, systemID, password, logLevel, logFormat string
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("smscsim", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.listen, "listen", envOr("SMSCSIM_LISTEN", ":2776"), "SMPP listen address (env SMSCSIM_LISTEN)")
	fs.StringVar(&o.systemID, "system-id", envOr("SMSCSIM_SYSTEM_ID", "bridge"), "system_id a client must bind with (env SMSCSIM_SYSTEM_ID)")
	fs.StringVar(&o.password, "password", envOr("SMSCSIM_PASSWORD", ""), "password a client must bind with; empty accepts any (env SMSCSIM_PASSWORD)")
	fs.StringVar(&o.logLevel, "log-level", envOr("SMSCSIM_LOG_LEVEL", "info"), "debug (also logs message text), info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", envOr("SMSCSIM_LOG_FORMAT", "text"), "text or json")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.systemID == "" {
		return o, errors.New("--system-id must not be empty")
	}
	return o, nil
}

func envOr(k, def string) string {
	if v, ok := os.LookupEnv(k); ok {
		return v
	}
	return def
}

func newLogger(o options, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", o.logLevel, err)
	}
	ho := &slog.HandlerOptions{Level: lvl}
	switch o.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", o.logFormat)
}

// run serves until SIGINT/SIGTERM or ctx ends. ready, when set, gets the
// actual listen address.
func run(ctx context.Context, args []string, logOut io.Writer, ready func(addr string)) error {
	o, err := parseFlags(args, logOut)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := newLogger(o, logOut)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.listen, err)
	}
	sim := &simulator{log: log}
	srv := smpp.NewServer(smpp.ServerConfig{
		SystemID: "smscsim",
		Auth:     auth(o.systemID, o.password),
		Handler:  sim,
		Logger:   log.With("part", "smpp"),
	})
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Info("smscsim listening", "addr", ln.Addr().String(), "system_id", o.systemID, "any_password", o.password == "")
	if ready != nil {
		ready(ln.Addr().String())
	}
	if err := srv.Serve(ctx, ln); err != nil && ctx.Err() == nil {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("smscsim stopped", "messages", sim.ids.Load())
	return nil
}

// auth admits systemID with password (any password when it is empty).
func auth(systemID, password string) func(string, string, smpp.CommandID, net.Addr) uint32 {
	return func(id, pw string, _ smpp.CommandID, _ net.Addr) uint32 {
		if id != systemID {
			return smpp.ESME_RINVSYSID
		}
		if password != "" && !smpp.CheckPassword(password, pw) {
			return smpp.ESME_RINVPASWD
		}
		return smpp.ESME_ROK
	}
}

// simulator answers and logs every message PDU.
type simulator struct {
	log *slog.Logger
	ids atomic.Uint64
}

func (s *simulator) HandleSMPP(ctx context.Context, sess *smpp.Session, req, resp *smpp.PDU) {
	switch req.ID {
	case smpp.SubmitSM, smpp.DataSM, smpp.DeliverSM:
	default:
		return // the session answers the rest with its defaults
	}
	resp.MessageID = strconv.FormatUint(s.ids.Add(1), 16)
	body := req.ShortMessage
	if len(body) == 0 {
		if v, ok := req.TLV(smpp.TagMessagePayload); ok {
			body = v
		}
	}
	attrs := []any{
		"pdu", req.ID.String(), "system_id", sess.SystemID(), "message_id", resp.MessageID,
		"src", req.SourceAddr, "src_ton", req.SourceAddrTON, "dst", req.DestAddr, "dst_ton", req.DestAddrTON,
		"data_coding", req.DataCoding, "esm_class", req.ESMClass, "registered_delivery", req.RegisteredDelivery,
		"octets", len(body),
	}
	if req.ESMClass&0x40 != 0 {
		_, b, c, err := smstext.ParseUDH(body)
		if err != nil {
			s.log.Warn("message with bad UDH", append(attrs, "err", err)...)
			return
		}
		body = b
		if c.Ok {
			attrs = append(attrs, "part", fmt.Sprintf("%d/%d ref %d", c.Seq, c.Total, c.Ref))
		}
	}
	s.log.Info("message", attrs...)
	if s.log.Enabled(ctx, slog.LevelDebug) {
		text, err := smstext.Decode(req.DataCoding, body)
		if err != nil {
			s.log.Debug("message text undecodable", "message_id", resp.MessageID, "err", err)
			return
		}
		s.log.Debug("message text", "message_id", resp.MessageID, "text", text)
	}
}
