package ctl

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
)

// queryPage is query --json's output: one page.
type queryPage struct {
	Entries        []*entryJSON `json:"entries"`
	Total          uint64       `json:"total"`
	TotalEstimated bool         `json:"totalEstimated"`
	Page           uint32       `json:"page"`
	HasMore        bool         `json:"hasMore"`
	NextCursor     string       `json:"nextCursor,omitempty"`
	TreeSize       uint64       `json:"treeSize"`
}

func newQueryCmd(g *globals) *cobra.Command {
	var (
		f                 pb.QueryFilter
		since             time.Duration
		from, to          string
		byTimestamp, desc bool
		limit             uint64
		cursor            string
		asJSON, asNDJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "query [filters] [--since DUR | --from TIME] [--to TIME] [--json | --ndjson]",
		Short: "Search events by actor, resource, action, result, time …",
		Long: `Search the ledger's indexes. Every filter given must match (AND); times are
RFC 3339 and bound the server receive time (--by-timestamp: the events' own
timestamps), from inclusive, to exclusive; --since 24h is --from 24 hours ago
(to page on with --cursor, give the same --from: the table prints it).
Results come in index order, oldest first (--desc: newest first).

Output:
  (default)  a table of one page (--limit, default 100) and how to go on
  --json     one page as one JSON object: {"entries":[…],"total":N,
             "totalEstimated":false,"page":1,"hasMore":…,"nextCursor":"…"};
             pass --cursor to get the next page
  --ndjson   every match, one JSON line each in the shape of "get",
             streamed (Export): --limit caps it, 0 (default) means all`,
		Example: `  ledgerctl query --actor u1 --since 24h
  ledgerctl query --actor u1 --resource document --result denied --json
  ledgerctl query --since 720h --ndjson > last-month.ndjson`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON && asNDJSON {
				return errors.New("give at most one of --json and --ndjson")
			}
			if since < 0 {
				return errors.New("--since must be positive")
			}
			if since > 0 && from != "" {
				return errors.New("give at most one of --since and --from")
			}
			if since > 0 {
				from = time.Now().Add(-since).UTC().Format(time.RFC3339Nano)
			}
			for name, v := range map[string]string{"--from": from, "--to": to} {
				if v != "" {
					if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
						return fmt.Errorf("%s %q is not an RFC 3339 time like 2024-01-15T10:30:00Z", name, v)
					}
				}
			}
			if byTimestamp {
				f.TimestampAfter, f.TimestampBefore = from, to
			} else {
				f.ReceivedAfter, f.ReceivedBefore = from, to
			}
			cc, err := g.conn()
			if err != nil {
				return err
			}
			qc := pb.NewQueryClient(cc)
			ctx := cmd.Context()
			if asNDJSON {
				stream, err := qc.Export(ctx, &pb.ExportRequest{Filter: &f, Descending: desc, Limit: limit, Cursor: cursor})
				if err != nil {
					return err
				}
				for {
					msg, err := stream.Recv()
					if errors.Is(err, io.EOF) {
						return nil
					}
					if err != nil {
						return err
					}
					for _, e := range msg.Entries {
						out, err := entryOut(e)
						if err != nil {
							return err
						}
						if err := g.printJSON(out); err != nil {
							return err
						}
					}
				}
			}
			if !cmd.Flags().Changed("limit") {
				limit = 100
			}
			if limit < 1 || limit > 1000 {
				return errors.New("--limit must be from 1 to 1000 (or use --ndjson for everything)")
			}
			resp, err := qc.Query(ctx, &pb.QueryRequest{Filter: &f, Descending: desc, Limit: uint32(limit), Cursor: cursor})
			if err != nil {
				return err
			}
			page := queryPage{Entries: []*entryJSON{}, Total: resp.Total, TotalEstimated: resp.TotalEstimated, Page: resp.Page,
				HasMore: resp.HasMore, NextCursor: resp.NextCursor, TreeSize: resp.TreeSize}
			for _, e := range resp.Entries {
				out, err := entryOut(e)
				if err != nil {
					return err
				}
				page.Entries = append(page.Entries, out)
			}
			if asJSON {
				return g.printJSON(page)
			}
			hint := ""
			if since > 0 {
				// --since moves with the clock; a cursor continues one
				// fixed query.
				hint = "--from " + from + " "
			}
			return printTable(g.stdout, resp, hint)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.ActorId, "actor", "", "actor id")
	fl.StringVar(&f.ActorType, "actor-type", "", "actor type")
	fl.StringVar(&f.ActorIp, "ip", "", "actor IP address")
	fl.StringVar(&f.ActionType, "action", "", "action type")
	fl.StringVar(&f.Resource, "resource", "", "resource (type)")
	fl.StringVar(&f.ResourceId, "resource-id", "", "resource id")
	fl.StringVar(&f.Result, "result", "", "result: success, failure, denied or error")
	fl.StringVar(&f.Application, "application", "", "application")
	fl.StringVar(&f.Environment, "environment", "", "environment")
	fl.StringVar(&f.RequestId, "request-id", "", "request id")
	fl.DurationVar(&since, "since", 0, "only events of the last DUR (e.g. 24h)")
	fl.StringVar(&from, "from", "", "only events at or after TIME (RFC 3339)")
	fl.StringVar(&to, "to", "", "only events before TIME (RFC 3339)")
	fl.BoolVar(&byTimestamp, "by-timestamp", false, "apply the time range to the events' own timestamps, not the receive time")
	fl.BoolVar(&desc, "desc", false, "newest first")
	fl.Uint64Var(&limit, "limit", 0, "page size (default 100, at most 1000); with --ndjson the most to export (default all)")
	fl.StringVar(&cursor, "cursor", "", "continue after a previous page (its nextCursor)")
	fl.BoolVar(&asJSON, "json", false, "print one page as one JSON object")
	fl.BoolVar(&asNDJSON, "ndjson", false, "stream every match as JSON lines")
	return cmd
}

// printTable writes a page for people.
func printTable(w io.Writer, resp *pb.QueryResponse, hint string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tRECEIVED\tACTOR\tACTION\tRESOURCE\tRESULT\tID")
	for _, e := range resp.Entries {
		ev := e.GetEvent()
		res := ev.GetAction().GetResource()
		if id := ev.GetAction().GetResourceId(); id != "" {
			res += "/" + id
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Index, e.ReceivedAt, ev.GetActor().GetId(), ev.GetAction().GetType(), res, ev.GetAction().GetResult(), ev.GetId())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	total := fmt.Sprint(resp.Total)
	if resp.TotalEstimated {
		total = "about " + total
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d shown, %s in all (page %d)", len(resp.Entries), total, resp.Page)
	if resp.HasMore {
		fmt.Fprintf(&b, "; next page: the same filters with %s--cursor %s", hint, resp.NextCursor)
	}
	_, err := fmt.Fprintln(w, b.String())
	return err
}
