import { useState } from 'react';
import { useI18n } from '../i18n';
import { useAction } from '../lib/query';
import { useResource } from '../lib/resource';
import { Badge, Button, Card, PageHeader, TextField } from '../ui/components';
import type { Column } from '../ui/DataTable';
import { AddButton, FormDialog, ResourceConfirm, ResourceTable, SecretDialog } from '../ui/resource';
import { type ApiKey, portalApi } from './api';
import { useCan } from './permissions';

/** Integration API keys: created with the key shown once, then only its prefix; revoked with a confirm. */
export function ApiKeysPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const canWrite = useCan('apikeys:write');
  const keys = useResource<ApiKey>({
    queryKey: ['api-keys'],
    queryFn: () => portalApi.get<{ items: ApiKey[] } | ApiKey[]>('/api-keys'),
    confirm: (k) => portalApi.delete(`/api-keys/${k.id}`),
    confirmed: t('apiKeys.revoked'),
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
          <Button size="sm" variant="danger" onClick={() => keys.ask(k)}>
            {t('apiKeys.revoke')}
          </Button>
        ),
    });
  }
  return (
    <div className="stack-lg">
      <PageHeader
        title={t('apiKeys.title')}
        subtitle={t('apiKeys.subtitle')}
        actions={
          <AddButton canWrite={canWrite} label={t('apiKeys.create')} onClick={() => keys.edit('new')} />
        }
      />
      <Card padded={false}>
        <ResourceTable
          resource={keys}
          columns={columns}
          empty={{ icon: 'key', title: t('apiKeys.empty'), hint: t('apiKeys.emptyHint') }}
        />
      </Card>
      {keys.editing ? <CreateKeyDialog onClose={keys.closeEdit} /> : null}
      <ResourceConfirm
        resource={keys}
        title={t('apiKeys.revokeTitle')}
        text={(k) => t('apiKeys.revokeText', { name: k.name, prefix: k.prefix })}
        confirmLabel={t('apiKeys.revoke')}
      />
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
      <SecretDialog
        title={t('apiKeys.createdTitle')}
        secret={created.key}
        label={t('apiKeys.keyLabel')}
        testId="new-api-key"
        warning={t('apiKeys.showOnce')}
        note={t('apiKeys.usage')}
        onClose={onClose}
      />
    );
  }
  return (
    <FormDialog
      title={t('apiKeys.create')}
      onClose={onClose}
      busy={create.isPending}
      canSubmit={Boolean(name.trim())}
      submitLabel={t('apiKeys.createSubmit')}
      onSubmit={() => create.mutate()}
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
    </FormDialog>
  );
}
