import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useI18n } from '../i18n';
import { useAction } from '../lib/query';
import {
  Badge,
  Button,
  Callout,
  Card,
  ConfirmDialog,
  EmptyState,
  ErrorState,
  Loading,
  Modal,
  PageHeader,
  SecretBox,
  TextField,
} from '../ui/components';
import { type Column, DataTable } from '../ui/DataTable';
import { type ApiKey, itemsOf, portalApi } from './api';
import { useCan } from './permissions';

/** Integration API keys: created with the key shown once, then only its prefix; revoked with a confirm. */
export function ApiKeysPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const canWrite = useCan('apikeys:write');
  const keys = useQuery({
    queryKey: ['api-keys'],
    queryFn: () => portalApi.get<{ items: ApiKey[] } | ApiKey[]>('/api-keys'),
  });
  const [isCreating, setCreating] = useState(false);
  const [revoking, setRevoking] = useState<ApiKey | null>(null);
  const revoke = useAction((id: string) => portalApi.delete(`/api-keys/${id}`), {
    invalidate: [['api-keys']],
    success: t('apiKeys.revoked'),
    onSuccess: () => setRevoking(null),
  });
  const columns: Array<Column<ApiKey>> = [
    { key: 'name', header: t('common.name'), primary: true, render: (k) => k.name },
    {
      key: 'prefix',
      header: t('apiKeys.prefix'),
      render: (k) => <code data-testid="api-key-prefix">{k.prefix}…</code>,
    },
    { key: 'created', header: t('common.created'), render: (k) => i18n.dateTime(k.createdAt) },
    {
      key: 'status',
      header: t('common.status'),
      render: (k) =>
        k.revokedAt ? (
          <Badge tone="danger">{t('apiKeys.revokedAt', { date: i18n.date(k.revokedAt) })}</Badge>
        ) : (
          <Badge tone="success">{t('apiKeys.active')}</Badge>
        ),
    },
  ];
  if (canWrite) {
    columns.push({
      key: 'actions',
      header: '',
      actions: true,
      render: (k) =>
        k.revokedAt ? null : (
          <Button size="sm" variant="danger" onClick={() => setRevoking(k)}>
            {t('apiKeys.revoke')}
          </Button>
        ),
    });
  }
  const items = itemsOf(keys.data);
  return (
    <div className="stack-lg">
      <PageHeader
        title={t('apiKeys.title')}
        subtitle={t('apiKeys.subtitle')}
        actions={
          canWrite ? (
            <Button variant="primary" icon="plus" onClick={() => setCreating(true)}>
              {t('apiKeys.create')}
            </Button>
          ) : null
        }
      />
      <Card padded={false}>
        {keys.isError ? (
          <ErrorState error={keys.error} onRetry={() => keys.refetch()} />
        ) : keys.isPending ? (
          <Loading />
        ) : items.length === 0 ? (
          <EmptyState icon="key" title={t('apiKeys.empty')} hint={t('apiKeys.emptyHint')} />
        ) : (
          <DataTable columns={columns} rows={items} rowKey={(k) => k.id} />
        )}
      </Card>
      {isCreating ? <CreateKeyDialog onClose={() => setCreating(false)} /> : null}
      {revoking ? (
        <ConfirmDialog
          title={t('apiKeys.revokeTitle')}
          text={t('apiKeys.revokeText', { name: revoking.name, prefix: revoking.prefix })}
          confirmLabel={t('apiKeys.revoke')}
          busy={revoke.isPending}
          onConfirm={() => revoke.mutate(revoking.id)}
          onCancel={() => setRevoking(null)}
        />
      ) : null}
    </div>
  );
}

function CreateKeyDialog({ onClose }: { onClose: () => void }) {
  const { t } = useI18n();
  const [name, setName] = useState('');
  const [created, setCreated] = useState<{ key: string; prefix: string; name: string } | null>(null);
  const create = useAction(
    () =>
      portalApi.post<{ id: string; name: string; prefix: string; key: string }>('/api-keys', {
        name: name.trim(),
      }),
    { invalidate: [['api-keys']], onSuccess: (output) => setCreated(output) },
  );
  if (created) {
    return (
      <Modal
        title={t('apiKeys.createdTitle')}
        onClose={onClose}
        footer={
          <Button variant="primary" onClick={onClose}>
            {t('apiKeys.savedIt')}
          </Button>
        }
      >
        <div className="stack">
          <Callout tone="warning">{t('apiKeys.showOnce')}</Callout>
          <SecretBox value={created.key} label={t('apiKeys.keyLabel')} testId="new-api-key" />
          <p className="small muted">{t('apiKeys.usage')}</p>
        </div>
      </Modal>
    );
  }
  return (
    <Modal
      title={t('apiKeys.create')}
      onClose={onClose}
      footer={
        <>
          <Button onClick={onClose}>{t('common.cancel')}</Button>
          <Button
            variant="primary"
            busy={create.isPending}
            disabled={!name.trim()}
            onClick={() => create.mutate()}
          >
            {t('apiKeys.createSubmit')}
          </Button>
        </>
      }
    >
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (name.trim()) create.mutate();
        }}
      >
        <TextField
          label={t('apiKeys.name')}
          hint={t('apiKeys.nameHint')}
          value={name}
          onChange={setName}
          placeholder={t('apiKeys.namePlaceholder')}
          required
          autoFocus
        />
      </form>
    </Modal>
  );
}
