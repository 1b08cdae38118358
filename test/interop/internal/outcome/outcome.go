// Package outcome writes down how a ttrpc call ended, in a form that compares
// across shims: a gRPC code name and message, and whether the error came back
// from the server (a status on the wire) or was made by the Go client itself
// (its context ended first, or the connection closed).
package outcome

import (
	"context"
	"errors"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type Outcome struct {
	Code    string  `json:"code"`
	Message string  `json:"message,omitempty"`
	Source  string  `json:"source"`
	Ms      float64 `json:"ms"`
	Value   any     `json:"value,omitempty"`
}

// Of classifies err. The client's own context errors are checked first: the
// ttrpc client returns ctx.Err() as is, which would otherwise read as Unknown.
func Of(err error, started time.Time) Outcome {
	o := Outcome{Ms: float64(time.Since(started).Microseconds()) / 1000}
	switch {
	case err == nil:
		o.Code, o.Source = codes.OK.String(), "server"
	case errors.Is(err, context.DeadlineExceeded):
		o.Code, o.Source, o.Message = codes.DeadlineExceeded.String(), "client", err.Error()
	case errors.Is(err, context.Canceled):
		o.Code, o.Source, o.Message = codes.Canceled.String(), "client", err.Error()
	case errors.Is(err, ttrpc.ErrClosed):
		o.Code, o.Source, o.Message = codes.Unavailable.String(), "transport", err.Error()
	default:
		if st, ok := status.FromError(err); ok {
			o.Code, o.Source, o.Message = st.Code().String(), "server", st.Message()
		} else {
			o.Code, o.Source, o.Message = codes.Unknown.String(), "client", err.Error()
		}
	}
	return o
}

// Time runs f and classifies its error; f's answer, if any, is the value (a
// failed call may still say something, such as the stream its error came on).
func Time(f func() (any, error)) Outcome {
	t0 := time.Now()
	v, err := f()
	o := Of(err, t0)
	o.Value = v
	return o
}
