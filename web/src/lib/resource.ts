import { keepPreviousData, type QueryKey, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useAction } from './query';

/** What a list endpoint answers: `{items}` (most) or a bare array. */
type ListData<Row> = { items: Row[] } | Row[];

/**
 * The state every resource page repeats: the list query and its rows, the row open in the edit
 * dialog (`'new'` for a create), and the row waiting for a confirm with the action it confirms
 * (usually a delete). The action invalidates the list and closes the confirm when it succeeds.
 */
export function useResource<Row, Data = ListData<Row>>(options: {
  queryKey: QueryKey;
  queryFn: () => Promise<Data>;
  /** The rows in the loaded data; defaults to `items` or the array itself. */
  rows?: (data: Data) => Row[];
  /** Keep showing the last answer while a new key (a search) loads. */
  keepPrevious?: boolean;
  /** The confirmed action on a row, e.g. a delete. */
  confirm?: (row: Row) => Promise<unknown>;
  /** The toast after the confirmed action. */
  confirmed?: string;
  /** Queries to refresh after the confirmed action; defaults to the list's first key part. */
  invalidate?: QueryKey[];
}) {
  const query = useQuery({
    queryKey: options.queryKey,
    queryFn: options.queryFn,
    placeholderData: options.keepPrevious ? keepPreviousData : undefined,
  });
  const [editing, setEditing] = useState<Row | 'new' | null>(null);
  const [confirming, setConfirming] = useState<Row | null>(null);
  const action = useAction((row: Row) => options.confirm?.(row) ?? Promise.resolve(null), {
    invalidate: options.invalidate ?? [[options.queryKey[0]]],
    success: options.confirmed,
    onSuccess: () => setConfirming(null),
  });
  const data = query.data;
  const items: Row[] =
    data === undefined
      ? []
      : options.rows
        ? options.rows(data)
        : Array.isArray(data)
          ? (data as Row[])
          : ((data as { items?: Row[] }).items ?? []);
  return {
    query,
    items,
    /** The row in the edit dialog, `'new'` for a create, null when closed. */
    editing,
    /** The row being edited, or null for a create. */
    edited: editing === 'new' ? null : editing,
    edit: (row: Row | 'new') => setEditing(row),
    closeEdit: () => setEditing(null),
    /** The row waiting for a confirm. */
    confirming,
    ask: (row: Row) => setConfirming(row),
    cancel: () => setConfirming(null),
    /** Runs the confirmed action on the row waiting for it. */
    action,
  };
}
