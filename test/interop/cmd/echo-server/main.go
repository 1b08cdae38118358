// echo-server: a Go ttrpc server (github.com/containerd/ttrpc, as containerd
// and the shims use it) for shimlab's TypeScript client to call. It serves
// shimlab.interop.v1.Echo on a unix socket, with messages from
// google.protobuf's wrappers so that nothing needs generating:
//
//	Echo(StringValue) StringValue          the same value back
//	Delay(Int64Value) Int64Value           the same value after that many ms
//	Fail(StringValue "<code> <message>")   that gRPC status, with two details
//	FailPlain(StringValue name)            a plain Go error (eof, notexist, exist, other)
//	Deadline(Empty) Int64Value             ns left until the request's deadline, -1 if none
//	Sleep(Int64Value ms) Int64Value        waits ms or until the request's context ends
//	Metadata(Empty) StringValue            the request's metadata, as JSON
//	Big(Int64Value n) StringValue          a string of n bytes (over 4 MiB cannot be sent)
//	Hangup(Empty) Empty                    closes this connection without answering
//	Log(Empty) StringValue                 how this connection's Sleeps ended, as JSON
//
// Each connection gets a ttrpc server of its own, so that Hangup and Log know
// which connection they belong to. It prints "READY <socket>" once listening
// and stops on SIGTERM or SIGINT.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const serviceName = "shimlab.interop.v1.Echo"

func main() {
	socket := flag.String("socket", "", "unix socket to listen on")
	flag.Parse()
	if *socket == "" {
		fmt.Fprintln(os.Stderr, "usage: echo-server -socket <path>")
		os.Exit(2)
	}
	l, err := net.Listen("unix", *socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		l.Close()
	}()
	fmt.Printf("READY %s\n", *socket)
	for {
		conn, err := l.Accept()
		if err != nil {
			os.Exit(0) // the listener was closed by a signal; Close unlinked the socket
		}
		go serveConn(conn)
	}
}

// serveConn runs a ttrpc server for one connection, ending with it.
func serveConn(conn net.Conn) {
	one := newOneConnListener(conn)
	srv, err := ttrpc.NewServer()
	if err != nil {
		conn.Close()
		return
	}
	c := &connection{conn: one.conn}
	srv.RegisterService(serviceName, c.desc())
	_ = srv.Serve(context.Background(), one)
	_ = srv.Close()
}

// connection is one client's connection and what happened on it.
type connection struct {
	conn net.Conn
	mu   sync.Mutex
	log  []string
}

func (c *connection) note(s string) {
	c.mu.Lock()
	c.log = append(c.log, s)
	c.mu.Unlock()
}

func method[Req proto.Message](newReq func() Req, f func(ctx context.Context, req Req) (proto.Message, error)) ttrpc.Method {
	return func(ctx context.Context, unmarshal func(any) error) (any, error) {
		req := newReq()
		if err := unmarshal(req); err != nil {
			return nil, err
		}
		return f(ctx, req)
	}
}

func str() *wrapperspb.StringValue { return &wrapperspb.StringValue{} }
func i64() *wrapperspb.Int64Value  { return &wrapperspb.Int64Value{} }
func empty() *emptypb.Empty        { return &emptypb.Empty{} }

func (c *connection) desc() *ttrpc.ServiceDesc {
	return &ttrpc.ServiceDesc{Methods: map[string]ttrpc.Method{
		"Echo": method(str, func(_ context.Context, r *wrapperspb.StringValue) (proto.Message, error) { return r, nil }),
		"Delay": method(i64, func(ctx context.Context, r *wrapperspb.Int64Value) (proto.Message, error) {
			time.Sleep(time.Duration(r.Value) * time.Millisecond)
			return r, nil
		}),
		"Fail": method(str, func(_ context.Context, r *wrapperspb.StringValue) (proto.Message, error) {
			code, msg, _ := strings.Cut(r.Value, " ")
			n, err := strconv.Atoi(code)
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "Fail wants \"<code> <message>\", got %q", r.Value)
			}
			st, err := status.New(codes.Code(n), msg).WithDetails(wrapperspb.String("detail of "+msg), wrapperspb.Int64(int64(n)))
			if err != nil {
				return nil, err
			}
			return nil, st.Err()
		}),
		"FailPlain": method(str, func(_ context.Context, r *wrapperspb.StringValue) (proto.Message, error) {
			switch r.Value {
			case "eof":
				return nil, io.EOF
			case "notexist":
				// A *PathError, since os.IsNotExist (which ttrpc's convertCode asks) does not unwrap %w.
				return nil, &os.PathError{Op: "open", Path: "/nowhere", Err: os.ErrNotExist}
			case "exist":
				return nil, &os.PathError{Op: "mkdir", Path: "/", Err: os.ErrExist}
			default:
				return nil, errors.New(r.Value)
			}
		}),
		"Deadline": method(empty, func(ctx context.Context, _ *emptypb.Empty) (proto.Message, error) {
			dl, ok := ctx.Deadline()
			if !ok {
				return wrapperspb.Int64(-1), nil
			}
			return wrapperspb.Int64(time.Until(dl).Nanoseconds()), nil
		}),
		"Sleep": method(i64, func(ctx context.Context, r *wrapperspb.Int64Value) (proto.Message, error) {
			t0 := time.Now()
			select {
			case <-time.After(time.Duration(r.Value) * time.Millisecond):
				c.note(fmt.Sprintf("sleep %d: done", r.Value))
				return r, nil
			case <-ctx.Done():
				c.note(fmt.Sprintf("sleep %d: %v after %d ms", r.Value, ctx.Err(), time.Since(t0).Milliseconds()))
				return nil, ctx.Err()
			}
		}),
		"Metadata": method(empty, func(ctx context.Context, _ *emptypb.Empty) (proto.Message, error) {
			md, _ := ttrpc.GetMetadata(ctx)
			b, err := json.Marshal(md)
			if err != nil {
				return nil, err
			}
			return wrapperspb.String(string(b)), nil
		}),
		"Big": method(i64, func(_ context.Context, r *wrapperspb.Int64Value) (proto.Message, error) {
			return wrapperspb.String(strings.Repeat("x", int(r.Value))), nil
		}),
		"Hangup": method(empty, func(context.Context, *emptypb.Empty) (proto.Message, error) {
			c.conn.Close()
			return empty(), nil
		}),
		"Log": method(empty, func(context.Context, *emptypb.Empty) (proto.Message, error) {
			c.mu.Lock()
			b, err := json.Marshal(c.log)
			c.mu.Unlock()
			if err != nil {
				return nil, err
			}
			return wrapperspb.String(string(b)), nil
		}),
	}}
}

// oneConnListener hands its one connection to ttrpc's Serve, then blocks
// Accept until that connection is closed, so that Serve returns with it.
type oneConnListener struct {
	conn   *closeNotifyConn
	handed chan net.Conn
}

type closeNotifyConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *closeNotifyConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.closed) })
	return err
}

func newOneConnListener(conn net.Conn) *oneConnListener {
	l := &oneConnListener{conn: &closeNotifyConn{Conn: conn, closed: make(chan struct{})}, handed: make(chan net.Conn, 1)}
	l.handed <- l.conn
	return l
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.handed:
		return c, nil
	case <-l.conn.closed:
		return nil, net.ErrClosed
	}
}

func (l *oneConnListener) Close() error   { return l.conn.Close() }
func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }
