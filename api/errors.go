package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/auditledger/ledgerd/ledger"
)

// Class is how an error is reported at the edge: its gRPC code, HTTP
// status and the snake_case name used in JSON error bodies.
type Class struct {
	Code   codes.Code
	HTTP   int
	Name   string
	Public bool // the error text may be shown to the caller
}

// classes maps each package sentinel to its class, in the order checked.
var classes = []struct {
	err error
	c   Class
}{
	{ledger.ErrInvalid, Class{codes.InvalidArgument, http.StatusBadRequest, "invalid_argument", true}},
	{ledger.ErrNotFound, Class{codes.NotFound, http.StatusNotFound, "not_found", true}},
	{ledger.ErrTooLarge, Class{codes.ResourceExhausted, http.StatusRequestEntityTooLarge, "too_large", true}},
	{ledger.ErrPushback, Class{codes.ResourceExhausted, http.StatusTooManyRequests, "resource_exhausted", true}},
	{ledger.ErrNotLeader, Class{codes.Unavailable, http.StatusServiceUnavailable, "unavailable", true}},
	{ledger.ErrClosed, Class{codes.Unavailable, http.StatusServiceUnavailable, "unavailable", true}},
	{ledger.ErrCorrupt, Class{codes.DataLoss, http.StatusInternalServerError, "data_loss", false}},
	{context.DeadlineExceeded, Class{codes.DeadlineExceeded, http.StatusGatewayTimeout, "deadline_exceeded", true}},
	{context.Canceled, Class{codes.Canceled, 499, "canceled", true}},
}

var internal = Class{codes.Internal, http.StatusInternalServerError, "internal", false}

// Classify returns the class of err, by errors.Is against the sentinels
// of the packages behind the API. Unknown errors are internal.
func Classify(err error) Class {
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.c
		}
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return Class{Code: s.Code(), HTTP: httpFromCode(s.Code()), Name: "upstream", Public: true}
	}
	return internal
}

// RegisterClass adds a sentinel of another package (auth, feed, raft) to
// the mapping. Call it from init or before serving.
func RegisterClass(err error, c Class) {
	classes = append(classes, struct {
		err error
		c   Class
	}{err, c})
}

// Message is what the caller is told: the error text when the class is
// public, the class name otherwise (details go to the log only).
func (c Class) Message(err error) string {
	if c.Public {
		return err.Error()
	}
	return c.Name
}

// grpcError converts err to a gRPC status error, logging internal detail.
func grpcError(log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	c := Classify(err)
	if !c.Public {
		log.Error("request failed", "method", method, "err", err)
	}
	return status.Error(c.Code, c.Message(err))
}

func httpFromCode(c codes.Code) int {
	switch c {
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.FailedPrecondition:
		return http.StatusPreconditionFailed
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Unimplemented:
		return http.StatusNotImplemented
	}
	return http.StatusInternalServerError
}
