import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useI18n } from '../i18n';
import { useAction } from '../lib/query';
import { useResource } from '../lib/resource';
import {
  Badge,
  Button,
  Callout,
  Card,
  ConfirmDialog,
  PageHeader,
  SecretBox,
  Switch,
  TextField,
} from '../ui/components';
import { type Column, DataTable } from '../ui/DataTable';
import { AddButton, FormDialog, QueryState, SecretDialog } from '../ui/resource';
import { type Attempt, type Delivery, itemsOf, portalApi, type WebhookEndpoint } from './api';
import { useCan } from './permissions';

/** Event types merchants can subscribe to (empty selection = all). */
const EVENT_TYPES = [
  'purchase.committed',
  'purchase.refunded',
  'points.adjusted',
  'points.expired',
  'points.activated',
  'customer.created',
  'customer.enrolled',
  'hold.created',
  'hold.released',
];

/** Webhook endpoints: add (secret shown once), enable, rotate the secret, test, delivery log, replay. */
export function WebhooksPage() {
  const { t } = useI18n();
  const canWrite = useCan('webhooks:write');
  const endpoints = useResource<WebhookEndpoint>({
    queryKey: ['webhooks'],
    queryFn: () => portalApi.get<{ items: WebhookEndpoint[] }>('/webhooks'),
  });
  return (
    <div className="stack-lg">
      <PageHeader
        title={t('webhooks.title')}
        subtitle={t('webhooks.subtitle')}
        actions={
          <AddButton canWrite={canWrite} label={t('webhooks.add')} onClick={() => endpoints.edit('new')} />
        }
      />
      <QueryState
        query={endpoints.query}
        isEmpty={endpoints.items.length === 0}
        empty={{ icon: 'webhooks', title: t('webhooks.empty'), hint: t('webhooks.emptyHint') }}
        frame={(node) => <Card>{node}</Card>}
      >
        {endpoints.items.map((endpoint) => (
          <EndpointCard key={endpoint.id} endpoint={endpoint} canWrite={canWrite} />
        ))}
      </QueryState>
      {endpoints.editing ? <AddEndpointDialog onClose={endpoints.closeEdit} /> : null}
    </div>
  );
}

function EndpointCard({ endpoint, canWrite }: { endpoint: WebhookEndpoint; canWrite: boolean }) {
  const i18n = useI18n();
  const { t } = i18n;
  const [secret, setSecret] = useState<string | null>(null);
  const [confirm, setConfirm] = useState<'rotate' | 'delete' | null>(null);
  const [isLogOpen, setLogOpen] = useState(false);
  const [isReplayOpen, setReplayOpen] = useState(false);
  const toggle = useAction((enabled: boolean) => portalApi.patch(`/webhooks/${endpoint.id}`, { enabled }), {
    invalidate: [['webhooks']],
  });
  const rotate = useAction(
    () => portalApi.post<{ secret: string }>(`/webhooks/${endpoint.id}/rotate-secret`),
    {
      invalidate: [['webhooks']],
      onSuccess: (output) => {
        setConfirm(null);
        setSecret(output.secret);
      },
    },
  );
  const remove = useAction(() => portalApi.delete(`/webhooks/${endpoint.id}`), {
    invalidate: [['webhooks']],
    success: t('webhooks.deleted'),
  });
  const test = useAction(() => portalApi.post(`/webhooks/${endpoint.id}/test`), {
    invalidate: [['webhook-deliveries', endpoint.id]],
    success: t('webhooks.testSent'),
    onSuccess: () => setLogOpen(true),
  });
  return (
    <Card
      title={
        <span className="mono" style={{ fontSize: 15, overflowWrap: 'anywhere' }}>
          {endpoint.url}
        </span>
      }
      subtitle={endpoint.description ?? undefined}
      actions={
        endpoint.enabled ? (
          <Badge tone="success">{t('webhooks.enabled')}</Badge>
        ) : (
          <Badge tone="danger">{t('webhooks.disabled')}</Badge>
        )
      }
    >
      <div className="stack">
        {endpoint.disabledReason ? (
          <Callout tone="warning">
            {t('webhooks.disabledReason', { reason: endpoint.disabledReason })}
          </Callout>
        ) : null}
        <dl className="dl">
          <dt>{t('webhooks.events')}</dt>
          <dd>
            {endpoint.eventTypes.length === 0 ? (
              t('webhooks.allEvents')
            ) : (
              <span className="row" style={{ gap: 6 }}>
                {endpoint.eventTypes.map((type) => (
                  <Badge key={type}>{type}</Badge>
                ))}
              </span>
            )}
          </dd>
          <dt>{t('webhooks.secret')}</dt>
          <dd>
            <code>{endpoint.secretPrefix}…</code>
            {endpoint.previousSecretExpiresAt ? (
              <span className="small muted">
                {' '}
                · {t('webhooks.previousValid', { date: i18n.dateTime(endpoint.previousSecretExpiresAt) })}
              </span>
            ) : null}
          </dd>
          <dt>{t('common.created')}</dt>
          <dd>{i18n.dateTime(endpoint.createdAt)}</dd>
        </dl>
        {secret ? (
          <div className="stack">
            <Callout tone="warning">{t('webhooks.secretOnce')}</Callout>
            <SecretBox value={secret} label={t('webhooks.secret')} testId="webhook-secret" />
            <div>
              <Button size="sm" onClick={() => setSecret(null)}>
                {t('apiKeys.savedIt')}
              </Button>
            </div>
          </div>
        ) : null}
        <div className="row">
          {canWrite ? (
            <>
              <Switch
                checked={endpoint.enabled}
                onChange={(enabled) => toggle.mutate(enabled)}
                label={t('webhooks.active')}
                disabled={toggle.isPending}
              />
              <Button size="sm" icon="webhooks" busy={test.isPending} onClick={() => test.mutate()}>
                {t('webhooks.test')}
              </Button>
              <Button size="sm" icon="refresh" onClick={() => setConfirm('rotate')}>
                {t('webhooks.rotate')}
              </Button>
              <Button size="sm" onClick={() => setReplayOpen(true)}>
                {t('webhooks.replay')}
              </Button>
            </>
          ) : null}
          <Button size="sm" icon="history" aria-expanded={isLogOpen} onClick={() => setLogOpen(!isLogOpen)}>
            {isLogOpen ? t('webhooks.hideLog') : t('webhooks.showLog')}
          </Button>
          {canWrite ? (
            <Button size="sm" variant="danger" onClick={() => setConfirm('delete')}>
              {t('common.delete')}
            </Button>
          ) : null}
        </div>
        {isLogOpen ? <DeliveryLog endpointId={endpoint.id} /> : null}
      </div>
      {confirm === 'rotate' ? (
        <ConfirmDialog
          title={t('webhooks.rotateTitle')}
          text={t('webhooks.rotateText')}
          confirmLabel={t('webhooks.rotate')}
          busy={rotate.isPending}
          onConfirm={() => rotate.mutate()}
          onCancel={() => setConfirm(null)}
        />
      ) : null}
      {confirm === 'delete' ? (
        <ConfirmDialog
          title={t('webhooks.deleteTitle')}
          text={t('webhooks.deleteText', { url: endpoint.url })}
          confirmLabel={t('common.delete')}
          busy={remove.isPending}
          onConfirm={() => remove.mutate()}
          onCancel={() => setConfirm(null)}
        />
      ) : null}
      {isReplayOpen ? <ReplayDialog endpointId={endpoint.id} onClose={() => setReplayOpen(false)} /> : null}
    </Card>
  );
}

function deliveryTone(status: string): 'success' | 'warning' | 'danger' | 'default' {
  if (status === 'delivered') return 'success';
  if (status === 'dead') return 'danger';
  if (status === 'pending' || status === 'processing') return 'warning';
  return 'default';
}

function DeliveryLog({ endpointId }: { endpointId: string }) {
  const i18n = useI18n();
  const { t } = i18n;
  const [open, setOpen] = useState<string | null>(null);
  const deliveries = useQuery({
    queryKey: ['webhook-deliveries', endpointId],
    queryFn: () => portalApi.get<{ items: Delivery[] }>(`/webhooks/${endpointId}/deliveries`),
    refetchInterval: 5000,
  });
  const columns: Array<Column<Delivery>> = [
    { key: 'type', header: t('webhooks.eventType'), primary: true, render: (d) => <code>{d.type}</code> },
    {
      key: 'status',
      header: t('common.status'),
      render: (d) => (
        <Badge tone={deliveryTone(d.status)}>
          {t(`outbox.status.${d.status}` as 'outbox.status.pending')}
        </Badge>
      ),
    },
    { key: 'attempts', header: t('webhooks.attempts'), numeric: true, render: (d) => i18n.num(d.attempts) },
    {
      key: 'error',
      header: t('webhooks.lastError'),
      render: (d) => (d.lastError ? <span className="small negative">{d.lastError}</span> : ''),
    },
    {
      key: 'created',
      header: t('common.date'),
      render: (d) => <span className="nowrap">{i18n.dateTime(d.createdAt)}</span>,
    },
    {
      key: 'more',
      header: '',
      actions: true,
      render: (d) =>
        d.attemptLog.length > 0 ? (
          <Button
            size="sm"
            variant="ghost"
            aria-expanded={open === String(d.eventId)}
            onClick={() => setOpen(open === String(d.eventId) ? null : String(d.eventId))}
          >
            {open === String(d.eventId)
              ? t('webhooks.hideAttempts')
              : t('webhooks.showAttempts', { n: d.attemptLog.length })}
          </Button>
        ) : null,
    },
  ];
  const items = itemsOf(deliveries.data);
  return (
    <QueryState
      query={deliveries}
      isEmpty={items.length === 0}
      empty={{ icon: 'history', title: t('webhooks.noDeliveries'), hint: t('webhooks.noDeliveriesHint') }}
    >
      <div className="card" style={{ boxShadow: 'none' }}>
        <DataTable
          columns={columns}
          rows={items}
          rowKey={(d) => String(d.eventId)}
          expanded={(d) => (open === String(d.eventId) ? <AttemptLog attempts={d.attemptLog} /> : null)}
        />
      </div>
    </QueryState>
  );
}

function AttemptLog({ attempts }: { attempts: Attempt[] }) {
  const i18n = useI18n();
  const { t } = i18n;
  return (
    <div className="attempt-log" style={{ width: '100%', textAlign: 'left' }}>
      {attempts.map((a) => (
        <div key={a.attempt} className="stack" style={{ gap: 4 }}>
          <div className="row" style={{ gap: 8 }}>
            <strong>#{a.attempt}</strong>
            <Badge tone={a.result === 'ok' ? 'success' : 'danger'}>{a.result}</Badge>
            {a.statusCode ? <span className="mono">HTTP {a.statusCode}</span> : null}
            <span className="muted">{i18n.dateTime(a.startedAt)}</span>
            <span className="muted">{t('webhooks.duration', { ms: a.durationMs })}</span>
          </div>
          {a.error ? <pre className="negative">{a.error}</pre> : null}
          {a.responseExcerpt ? <pre>{a.responseExcerpt}</pre> : null}
        </div>
      ))}
    </div>
  );
}

function AddEndpointDialog({ onClose }: { onClose: () => void }) {
  const { t } = useI18n();
  const [url, setUrl] = useState('https://');
  const [description, setDescription] = useState('');
  const [types, setTypes] = useState<string[]>([]);
  const [secret, setSecret] = useState<string | null>(null);
  const create = useAction(
    () =>
      portalApi.post<{ id: string; secret: string }>('/webhooks', {
        url: url.trim(),
        eventTypes: types,
        ...(description.trim() ? { description: description.trim() } : {}),
      }),
    { invalidate: [['webhooks']], onSuccess: (output) => setSecret(output.secret) },
  );
  if (secret) {
    return (
      <SecretDialog
        title={t('webhooks.addedTitle')}
        secret={secret}
        label={t('webhooks.secret')}
        testId="webhook-secret"
        warning={t('webhooks.secretOnce')}
        note={t('webhooks.verifyHint')}
        onClose={onClose}
      />
    );
  }
  return (
    <FormDialog
      title={t('webhooks.add')}
      onClose={onClose}
      busy={create.isPending}
      canSubmit={/^https?:\/\/.+/.test(url.trim())}
      submitLabel={t('webhooks.addSubmit')}
      onSubmit={() => create.mutate()}
    >
      <TextField
        label={t('webhooks.url')}
        type="url"
        inputMode="url"
        value={url}
        onChange={setUrl}
        autoFocus
      />
      <TextField label={t('webhooks.description')} value={description} onChange={setDescription} />
      <fieldset className="field" style={{ border: 'none', padding: 0, margin: 0 }}>
        <legend className="field-label">{t('webhooks.events')}</legend>
        <span className="field-hint">{t('webhooks.eventsHint')}</span>
        <div className="grid-2" style={{ gap: 8, marginTop: 8 }}>
          {EVENT_TYPES.map((type) => (
            <label key={type} className="checkbox">
              <input
                type="checkbox"
                checked={types.includes(type)}
                onChange={(e) =>
                  setTypes(e.target.checked ? [...types, type] : types.filter((x) => x !== type))
                }
              />
              <code>{type}</code>
            </label>
          ))}
        </div>
      </fieldset>
    </FormDialog>
  );
}

function ReplayDialog({ endpointId, onClose }: { endpointId: string; onClose: () => void }) {
  const { t } = useI18n();
  const local = new Date(Date.now() - 86_400_000 - new Date().getTimezoneOffset() * 60_000)
    .toISOString()
    .slice(0, 16);
  const [since, setSince] = useState(local);
  const replay = useAction(
    () =>
      portalApi.post<{ replayed?: number }>(`/webhooks/${endpointId}/replay`, {
        since: new Date(since).toISOString(),
      }),
    {
      invalidate: [['webhook-deliveries', endpointId]],
      success: (output) => t('webhooks.replayed', { n: output?.replayed ?? 0 }),
      onSuccess: onClose,
    },
  );
  return (
    <FormDialog
      title={t('webhooks.replayTitle')}
      onClose={onClose}
      busy={replay.isPending}
      canSubmit={Boolean(since)}
      submitLabel={t('webhooks.replay')}
      onSubmit={() => replay.mutate()}
    >
      <p className="muted">{t('webhooks.replayText')}</p>
      <TextField label={t('webhooks.since')} type="datetime-local" value={since} onChange={setSince} />
    </FormDialog>
  );
}
