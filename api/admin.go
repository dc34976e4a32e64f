package api

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/auth"
	"github.com/auditledger/ledgerd/fieldcrypt"
	"github.com/auditledger/ledgerd/ledger"
)

func init() {
	RegisterClass(auth.ErrUnauthenticated, Class{codes.Unauthenticated, 401, "unauthenticated", true})
	RegisterClass(auth.ErrPermissionDenied, Class{codes.PermissionDenied, 403, "permission_denied", true})
	RegisterClass(fieldcrypt.ErrWrongKey, Class{codes.FailedPrecondition, 500, "wrong_encryption_key", true})
}

// AdminService implements the ledger.v1.Admin gRPC service: tokens,
// encryption keys and erasure. Authorization happens in the auth
// interceptor; the service reads the caller from the context.
type AdminService struct {
	pb.UnimplementedAdminServer
	o AdminOptions
}

// AdminOptions configure the Admin service.
type AdminOptions struct {
	Tokens   *auth.Tokens
	Crypter  *fieldcrypt.Crypter // nil: encryption is off
	Appender Appender            // appends erasure events
	Logger   *slog.Logger
}

// NewAdminService returns the service; register it with Register.
func NewAdminService(o AdminOptions) *AdminService {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &AdminService{o: o}
}

// Register adds the service to g.
func (s *AdminService) Register(g grpc.ServiceRegistrar) { pb.RegisterAdminServer(g, s) }

func caller(ctx context.Context) *auth.Principal {
	if p := auth.FromContext(ctx); p != nil {
		return p
	}
	return &auth.Principal{ID: "anonymous", Kind: auth.KindAnonymous}
}

func (s *AdminService) WhoAmI(ctx context.Context, _ *pb.WhoAmIRequest) (*pb.WhoAmIResponse, error) {
	p := caller(ctx)
	resp := &pb.WhoAmIResponse{Id: p.ID, Name: p.Name, Kind: string(p.Kind), Permissions: auth.FormatPermissions(p.Perms)}
	for _, r := range p.Roles {
		resp.Roles = append(resp.Roles, string(r))
	}
	return resp, nil
}

func tokenInfoToProto(i auth.TokenInfo) *pb.TokenInfo {
	t := func(v time.Time) string {
		if v.IsZero() {
			return ""
		}
		return v.UTC().Format(time.RFC3339)
	}
	return &pb.TokenInfo{Id: i.ID, Name: i.Name, Role: string(i.Role), CreatedAt: t(i.CreatedAt), CreatedBy: i.CreatedBy,
		ExpiresAt: t(i.ExpiresAt), RevokedAt: t(i.RevokedAt), RevokedBy: i.RevokedBy}
}

func (s *AdminService) CreateToken(ctx context.Context, req *pb.CreateTokenRequest) (*pb.CreateTokenResponse, error) {
	role, err := auth.ParseRole(req.Role)
	if err != nil {
		return nil, grpcError(s.o.Logger, "CreateToken", &ledger.FieldError{Field: "role", Reason: err.Error()})
	}
	ttl, err := auth.ParseTTL(req.ExpiresIn)
	if err != nil {
		return nil, grpcError(s.o.Logger, "CreateToken", &ledger.FieldError{Field: "expiresIn", Reason: err.Error()})
	}
	p := caller(ctx)
	tok, info, err := s.o.Tokens.Create(ctx, role, req.Name, ttl, p.ID)
	if err != nil {
		return nil, grpcError(s.o.Logger, "CreateToken", err)
	}
	s.o.Logger.Info("token created", "id", info.ID, "role", info.Role, "name", info.Name, "by", p.ID)
	return &pb.CreateTokenResponse{Token: tok.String(), Info: tokenInfoToProto(info)}, nil
}

func (s *AdminService) ListTokens(ctx context.Context, _ *pb.ListTokensRequest) (*pb.ListTokensResponse, error) {
	list, err := s.o.Tokens.List()
	if err != nil {
		return nil, grpcError(s.o.Logger, "ListTokens", err)
	}
	resp := &pb.ListTokensResponse{}
	for _, i := range list {
		resp.Tokens = append(resp.Tokens, tokenInfoToProto(i))
	}
	return resp, nil
}

func (s *AdminService) RevokeToken(ctx context.Context, req *pb.RevokeTokenRequest) (*pb.RevokeTokenResponse, error) {
	p := caller(ctx)
	info, err := s.o.Tokens.Revoke(ctx, req.Id, p.ID)
	if err != nil {
		return nil, grpcError(s.o.Logger, "RevokeToken", err)
	}
	s.o.Logger.Info("token revoked", "id", info.ID, "by", p.ID)
	return &pb.RevokeTokenResponse{Info: tokenInfoToProto(info)}, nil
}

func keyInfoToProto(k fieldcrypt.KeyInfo) *pb.EncryptionKeyInfo {
	return &pb.EncryptionKeyInfo{Id: k.ID, CreatedAt: k.Created.UTC().Format(time.RFC3339Nano), WrappedBy: k.WrappedBy, Current: k.Current}
}

func (s *AdminService) crypter(method string) (*fieldcrypt.Crypter, error) {
	if s.o.Crypter == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "%s: field encryption is not configured", method)
	}
	return s.o.Crypter, nil
}

func (s *AdminService) RotateKey(ctx context.Context, _ *pb.RotateKeyRequest) (*pb.RotateKeyResponse, error) {
	c, err := s.crypter("RotateKey")
	if err != nil {
		return nil, err
	}
	k, err := c.Rotate(ctx)
	if err != nil {
		return nil, grpcError(s.o.Logger, "RotateKey", err)
	}
	return &pb.RotateKeyResponse{Key: keyInfoToProto(k)}, nil
}

func (s *AdminService) ListKeys(ctx context.Context, _ *pb.ListKeysRequest) (*pb.ListKeysResponse, error) {
	c, err := s.crypter("ListKeys")
	if err != nil {
		return nil, err
	}
	keys, err := c.Keys()
	if err != nil {
		return nil, grpcError(s.o.Logger, "ListKeys", err)
	}
	resp := &pb.ListKeysResponse{MasterKeyId: c.MasterKeyID()}
	for _, k := range keys {
		resp.Keys = append(resp.Keys, keyInfoToProto(k))
	}
	return resp, nil
}

// MaxEraseReason bounds an erasure's reason.
const MaxEraseReason = 1024

// Erasure event fields.
const (
	EraseAction   = "erase_data_subject"
	EraseResource = "data_subject"
)

func (s *AdminService) Erase(ctx context.Context, req *pb.EraseRequest) (*pb.EraseResponse, error) {
	c, err := s.crypter("Erase")
	if err != nil {
		return nil, err
	}
	reason := strings.TrimSpace(req.Reason)
	switch {
	case req.Subject == "":
		return nil, grpcError(s.o.Logger, "Erase", &ledger.FieldError{Field: "subject", Reason: "required"})
	case reason == "":
		return nil, grpcError(s.o.Logger, "Erase", &ledger.FieldError{Field: "reason", Reason: "required"})
	case len(reason) > MaxEraseReason || !utf8.ValidString(reason):
		return nil, grpcError(s.o.Logger, "Erase", &ledger.FieldError{Field: "reason", Reason: fmt.Sprintf("at most %d bytes of UTF-8", MaxEraseReason)})
	}
	p := caller(ctx)
	eventID := uuid.Must(uuid.NewV7()).String()
	ids, err := c.Erase(ctx, req.Subject, eventID)
	if err != nil {
		return nil, grpcError(s.o.Logger, "Erase", err)
	}
	// The subject itself is never logged nor put in the event: the data
	// key ids are enough to tie the event to the erased ciphertexts.
	ev := ledger.Event{
		ID:        eventID,
		Timestamp: time.Now().UTC().Format(time.RFC3339Nano),
		Actor:     ledger.Actor{ID: p.ID, Type: string(p.Kind)},
		Action: ledger.Action{Type: EraseAction, Resource: EraseResource, Result: "success",
			Metadata: map[string]string{"reason": reason, "dataKeys": strings.Join(ids, ","), "keysDestroyed": strconv.Itoa(len(ids))}},
		Context: ledger.Context{Application: "ledgerd"},
		Version: "1.0.0",
	}
	res, err := s.o.Appender.Append(ctx, []ledger.Event{ev})
	if err != nil {
		s.o.Logger.Error("erasure done but its event was not appended; erase again to record it", "event", eventID, "keys", len(ids), "err", err)
		return nil, grpcError(s.o.Logger, "Erase", fmt.Errorf("data keys destroyed, but appending the erasure event failed (erase again to record it): %w", err))
	}
	s.o.Logger.Info("data subject erased", "keysDestroyed", len(ids), "event", eventID, "index", res[0].Index, "by", p.ID)
	r := res[0]
	return &pb.EraseResponse{KeysDestroyed: uint32(len(ids)), Event: &pb.AppendResult{Index: r.Index, Id: r.ID, LeafHash: r.LeafHash[:], Signature: r.Signature, KeyId: r.KeyID, Duplicate: r.Duplicate}}, nil
}
