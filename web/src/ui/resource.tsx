import type { FormEvent, ReactNode } from 'react';
import { useI18n } from '../i18n';
import {
  Button,
  Callout,
  ConfirmDialog,
  EmptyState,
  ErrorState,
  Loading,
  Modal,
  RowActions,
  SecretBox,
  TextField,
} from './components';
import { type Column, DataTable } from './DataTable';
import type { IconName } from './icons';

/** The part of a react-query result a list's states need. */
interface ListQuery {
  isError: boolean;
  error: unknown;
  data: unknown;
  refetch: () => unknown;
}

/** The empty state's icon, title and hint. */
export interface EmptyProps {
  icon?: IconName;
  title: string;
  hint?: string;
}

/**
 * A list's four states: the error with a retry, a spinner until the first answer, the empty state,
 * then the content. `frame` wraps the first three (a page that lists cards puts them in a card).
 */
export function QueryState({
  query,
  isEmpty,
  empty,
  frame = (node) => node,
  children,
}: {
  query: ListQuery;
  isEmpty: boolean;
  empty: EmptyProps;
  frame?: (node: ReactNode) => ReactNode;
  children: ReactNode;
}) {
  if (query.isError) return frame(<ErrorState error={query.error} onRetry={() => query.refetch()} />);
  if (query.data === undefined) return frame(<Loading />);
  if (isEmpty) return frame(<EmptyState {...empty} />);
  return children;
}

/** A resource's rows (keyed by id) in a DataTable, with the error, loading and empty states. */
export function ResourceTable<Row extends { id: string }>({
  resource,
  columns,
  empty,
}: {
  resource: { query: ListQuery; items: Row[] };
  columns: Array<Column<Row>>;
  empty: EmptyProps;
}) {
  return (
    <QueryState query={resource.query} isEmpty={resource.items.length === 0} empty={empty}>
      <DataTable columns={columns} rows={resource.items} rowKey={(row) => row.id} />
    </QueryState>
  );
}

/** The trailing column of edit and delete buttons. */
export function editColumn<Row>(resource: {
  edit: (row: Row) => void;
  ask: (row: Row) => void;
}): Column<Row> {
  return {
    key: 'actions',
    header: '',
    actions: true,
    render: (row) => <RowActions onEdit={() => resource.edit(row)} onDelete={() => resource.ask(row)} />,
  };
}

/** The "add" button of a list a user may write to; nothing for one who may not. */
export function AddButton({
  canWrite,
  label,
  onClick,
  size,
}: {
  canWrite: boolean;
  label: string;
  onClick: () => void;
  size?: 'sm';
}) {
  if (!canWrite) return null;
  return (
    <Button variant="primary" size={size} icon="plus" onClick={onClick}>
      {label}
    </Button>
  );
}

/** The confirm dialog for the resource's row waiting for one; nothing when none is. */
export function ResourceConfirm<Row>({
  resource,
  title,
  text,
  confirmLabel,
}: {
  resource: {
    confirming: Row | null;
    cancel: () => void;
    action: { isPending: boolean; mutate: (row: Row) => void };
  };
  title: string;
  text: (row: Row) => ReactNode;
  /** Defaults to "Delete". */
  confirmLabel?: string;
}) {
  const { t } = useI18n();
  const row = resource.confirming;
  if (row === null) return null;
  return (
    <ConfirmDialog
      title={title}
      text={text(row)}
      confirmLabel={confirmLabel ?? t('common.delete')}
      busy={resource.action.isPending}
      onConfirm={() => resource.action.mutate(row)}
      onCancel={resource.cancel}
    />
  );
}

/**
 * A create or edit dialog: the fields in a form (Enter in a lone field submits), Cancel and a primary
 * button that is busy while saving and disabled until the input is valid.
 */
export function FormDialog({
  title,
  onClose,
  onSubmit,
  canSubmit = true,
  busy,
  submitLabel,
  wide,
  children,
}: {
  title: string;
  onClose: () => void;
  onSubmit: () => void;
  canSubmit?: boolean;
  busy: boolean;
  /** Defaults to "Save". */
  submitLabel?: string;
  wide?: boolean;
  children: ReactNode;
}) {
  const { t } = useI18n();
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (canSubmit && !busy) onSubmit();
  };
  return (
    <Modal
      title={title}
      onClose={onClose}
      wide={wide}
      footer={
        <>
          <Button onClick={onClose}>{t('common.cancel')}</Button>
          <Button variant="primary" busy={busy} disabled={!canSubmit} onClick={onSubmit}>
            {submitLabel ?? t('common.save')}
          </Button>
        </>
      }
    >
      <form className="stack" onSubmit={submit}>
        {children}
      </form>
    </Modal>
  );
}

/** A secret the API shows once (a new key or signing secret): the warning, the copy box, a note. */
export function SecretDialog({
  title,
  secret,
  label,
  testId,
  warning,
  note,
  onClose,
}: {
  title: string;
  secret: string;
  label: string;
  testId: string;
  warning: string;
  note: string;
  onClose: () => void;
}) {
  const { t } = useI18n();
  return (
    <Modal
      title={title}
      onClose={onClose}
      footer={
        <Button variant="primary" onClick={onClose}>
          {t('apiKeys.savedIt')}
        </Button>
      }
    >
      <div className="stack">
        <Callout tone="warning">{warning}</Callout>
        <SecretBox value={secret} label={label} testId={testId} />
        <p className="small muted">{note}</p>
      </div>
    </Modal>
  );
}

/** The shortest password a new account may have (the server checks it too). */
export const MIN_PASSWORD_LENGTH = 8;

/** A new account's password, with the length rule as its hint and its error. */
export function NewPasswordField({
  label,
  value,
  onChange,
}: {
  label: string;
  value: string;
  onChange: (value: string) => void;
}) {
  const { t } = useI18n();
  return (
    <TextField
      label={label}
      type="password"
      autoComplete="new-password"
      value={value}
      onChange={onChange}
      hint={t('users.passwordHint')}
      error={value && value.length < MIN_PASSWORD_LENGTH ? t('users.passwordShort') : undefined}
    />
  );
}
