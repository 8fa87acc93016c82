import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { useI18n } from '../i18n';
import { useAction } from '../lib/query';
import {
  Badge,
  Button,
  Card,
  EmptyState,
  ErrorState,
  Kpi,
  Loading,
  PageHeader,
  PointsDelta,
  Segmented,
  TextField,
  useDebounced,
  useLabel,
} from '../ui/components';
import { type Column, DataTable } from '../ui/DataTable';
import { Icon } from '../ui/icons';
import {
  type CustomerProfile,
  type CustomerRow,
  itemsOf,
  type LedgerEntry,
  portalApi,
  type Transaction,
} from './api';
import { useCan } from './permissions';
import { TransactionStatus } from './Transactions';

const PAGE = 20;

/** Customers: search by phone or name, paged. */
export function CustomersPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const navigate = useNavigate();
  const [q, setQ] = useState('');
  const [offset, setOffset] = useState(0);
  const query = useDebounced(q.trim(), 300);
  const customers = useQuery({
    queryKey: ['customers', query, offset],
    queryFn: () =>
      portalApi.get<{ items: CustomerRow[]; total: number }>('/customers', { q: query, limit: PAGE, offset }),
    placeholderData: keepPreviousData,
  });
  const columns: Array<Column<CustomerRow>> = [
    {
      key: 'name',
      header: t('customers.customer'),
      primary: true,
      render: (c) => (
        <div>
          <div>{c.name || <span className="muted">{t('customers.noName')}</span>}</div>
          <div className="small muted mono">{c.phone}</div>
        </div>
      ),
    },
    {
      key: 'available',
      header: t('customers.available'),
      numeric: true,
      render: (c) => i18n.num(c.available),
    },
    { key: 'pending', header: t('customers.pending'), numeric: true, render: (c) => i18n.num(c.pending) },
    { key: 'held', header: t('customers.held'), numeric: true, render: (c) => i18n.num(c.held) },
    {
      key: 'last',
      header: t('customers.lastPurchase'),
      render: (c) => (c.lastPurchaseAt ? i18n.date(c.lastPurchaseAt) : <span className="muted">—</span>),
    },
    { key: 'created', header: t('customers.joined'), render: (c) => i18n.date(c.createdAt) },
  ];
  const data = customers.data;
  return (
    <div className="stack-lg">
      <PageHeader title={t('customers.title')} subtitle={t('customers.subtitle')} />
      <Card padded={false}>
        <div className="card-body" style={{ paddingBottom: 16 }}>
          <TextField
            label={t('customers.search')}
            type="search"
            inputMode="search"
            placeholder={t('customers.searchPlaceholder')}
            value={q}
            onChange={(value) => {
              setQ(value);
              setOffset(0);
            }}
          />
        </div>
        {customers.isError ? (
          <ErrorState error={customers.error} onRetry={() => customers.refetch()} />
        ) : !data ? (
          <Loading />
        ) : data.items.length === 0 ? (
          <EmptyState
            icon="customers"
            title={query ? t('customers.notFound') : t('customers.empty')}
            hint={query ? undefined : t('customers.emptyHint')}
          />
        ) : (
          <>
            <DataTable
              columns={columns}
              rows={data.items}
              rowKey={(c) => c.id}
              onRowClick={(c) => navigate(`/portal/customers/${c.id}`)}
            />
            <div className="pager">
              <span>
                {t('common.shown', { from: offset + 1, to: offset + data.items.length, total: data.total })}
              </span>
              <div className="row">
                <Button
                  size="sm"
                  disabled={offset === 0}
                  onClick={() => setOffset(Math.max(0, offset - PAGE))}
                >
                  {t('common.prev')}
                </Button>
                <Button
                  size="sm"
                  disabled={offset + PAGE >= data.total}
                  onClick={() => setOffset(offset + PAGE)}
                >
                  {t('common.next')}
                </Button>
              </div>
            </div>
          </>
        )}
      </Card>
    </div>
  );
}

/** One customer: balance, tier, the full ledger history, purchases and a manual adjustment. */
export function CustomerPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const { customerId = '' } = useParams();
  const canAdjust = useCan('customers:adjust');
  const canWrite = useCan('customers:write');
  const profile = useQuery({
    queryKey: ['customer', customerId],
    queryFn: () => portalApi.get<CustomerProfile>(`/customers/${customerId}`),
  });
  const ledger = useQuery({
    queryKey: ['customer', customerId, 'ledger'],
    queryFn: () => portalApi.get<{ items: LedgerEntry[] }>(`/customers/${customerId}/ledger`),
  });
  const purchases = useQuery({
    queryKey: ['transactions', { customerId }],
    queryFn: () => portalApi.get<{ items: Transaction[] }>('/transactions', { customerId, limit: 20 }),
  });
  const kindLabel = useLabel('ledger.kind');

  if (profile.isError) {
    return (
      <div className="stack-lg">
        <BackLink />
        <Card>
          <ErrorState error={profile.error} onRetry={() => profile.refetch()} />
        </Card>
      </div>
    );
  }
  if (!profile.data) return <Loading />;
  const { customer, balance, tier } = profile.data;
  const tierName = tier ? (tier.name ?? t('miniapp.noTier')) : null;
  const remaining = tier?.next ? (tier.next.remaining ?? Math.max(0, tier.next.minSpend - tier.spend)) : null;

  const ledgerColumns: Array<Column<LedgerEntry>> = [
    {
      key: 'kind',
      header: t('ledger.operation'),
      primary: true,
      render: (e) => (
        <span className="row" style={{ gap: 8 }}>
          {kindLabel(e.kind)}
          {e.bucket === 'pending' ? <Badge tone="warning">{t('ledger.pending')}</Badge> : null}
          {e.bucket === 'held' ? <Badge>{t('ledger.held')}</Badge> : null}
        </span>
      ),
    },
    {
      key: 'points',
      header: t('ledger.points'),
      numeric: true,
      render: (e) => <PointsDelta value={Number(e.points)} />,
    },
    {
      key: 'order',
      header: t('ledger.order'),
      render: (e) => (e.orderId ? <code>{e.orderId}</code> : <span className="muted">—</span>),
    },
    { key: 'reason', header: t('ledger.reason'), render: (e) => e.reason ?? '' },
    { key: 'date', header: t('common.date'), render: (e) => i18n.dateTime(e.createdAt) },
  ];
  const purchaseColumns: Array<Column<Transaction>> = [
    { key: 'order', header: t('transactions.order'), primary: true, render: (p) => <code>{p.orderId}</code> },
    { key: 'total', header: t('transactions.total'), numeric: true, render: (p) => i18n.money(p.total) },
    {
      key: 'earned',
      header: t('transactions.earned'),
      numeric: true,
      render: (p) => i18n.num(p.earnedPoints),
    },
    {
      key: 'redeemed',
      header: t('transactions.redeemed'),
      numeric: true,
      render: (p) => i18n.num(p.redeemedPoints),
    },
    { key: 'status', header: t('common.status'), render: (p) => <TransactionStatus status={p.status} /> },
    { key: 'date', header: t('common.date'), render: (p) => i18n.dateTime(p.createdAt) },
  ];
  const entries = itemsOf(ledger.data);
  const purchaseItems = itemsOf(purchases.data);
  return (
    <div className="stack-lg">
      <BackLink />
      <PageHeader
        title={customer.name || customer.phone}
        subtitle={
          <span className="row" style={{ gap: 8 }}>
            <span className="mono">{customer.phone}</span>
            {tierName ? <Badge tone="info">{tierName}</Badge> : null}
            {customer.hasTelegram ? <Badge>Telegram</Badge> : null}
          </span>
        }
      />
      <div className="grid-3 grid-kpi">
        <Kpi
          label={t('customers.available')}
          value={<span data-testid="customer-available">{i18n.num(balance.available)}</span>}
          hint={t('customers.availableHint')}
        />
        <Kpi
          label={t('customers.pending')}
          value={i18n.num(balance.pending)}
          hint={t('customers.pendingHint')}
        />
        <Kpi
          label={t('customers.held')}
          value={<span data-testid="customer-held">{i18n.num(balance.held)}</span>}
          hint={t('customers.heldHint')}
        />
        <Kpi
          label={t('customers.tier')}
          value={tierName ?? '—'}
          hint={
            tier?.next && remaining !== null
              ? t('customers.nextTier', { tier: tier.next.name, amount: i18n.money(remaining) })
              : tier
                ? t('customers.spend', { amount: i18n.money(tier.spend) })
                : undefined
          }
        />
      </div>
      <div className="layout-side">
        <div className="stack-lg">
          <Card title={t('customers.history')} subtitle={t('customers.historyHint')} padded={false}>
            {ledger.isError ? (
              <ErrorState error={ledger.error} onRetry={() => ledger.refetch()} />
            ) : ledger.isPending ? (
              <Loading />
            ) : entries.length === 0 ? (
              <EmptyState icon="history" title={t('customers.noHistory')} />
            ) : (
              <div data-testid="customer-ledger">
                <DataTable columns={ledgerColumns} rows={entries} rowKey={(e) => String(e.id)} />
              </div>
            )}
          </Card>
          <Card title={t('customers.purchases')} padded={false}>
            {purchases.isError ? (
              <ErrorState error={purchases.error} onRetry={() => purchases.refetch()} />
            ) : purchases.isPending ? (
              <Loading />
            ) : purchaseItems.length === 0 ? (
              <EmptyState icon="transactions" title={t('transactions.empty')} />
            ) : (
              <DataTable columns={purchaseColumns} rows={purchaseItems} rowKey={(p) => p.id} />
            )}
          </Card>
        </div>
        <div className="sticky-side stack">
          {canAdjust ? <AdjustCard customerId={customer.id} /> : null}
          <Card title={t('customers.details')}>
            <dl className="dl">
              <dt>{t('common.id')}</dt>
              <dd className="mono small">{customer.id}</dd>
              <dt>{t('customers.joined')}</dt>
              <dd>{i18n.dateTime(customer.createdAt)}</dd>
              <dt>{t('customers.lastPurchase')}</dt>
              <dd>{customer.lastPurchaseAt ? i18n.dateTime(customer.lastPurchaseAt) : '—'}</dd>
              <dt>{t('customers.referralCode')}</dt>
              <dd className="mono" data-testid="customer-referral-code">
                {customer.referralCode ?? '—'}
              </dd>
              <dt>{t('customers.birthDate')}</dt>
              <dd data-testid="customer-birth-date">
                {customer.birthDate ? i18n.date(customer.birthDate) : '—'}
              </dd>
            </dl>
            {canWrite ? (
              <BirthDateForm customerId={customer.id} birthDate={customer.birthDate ?? null} />
            ) : null}
          </Card>
        </div>
      </div>
    </div>
  );
}

function BackLink() {
  const { t } = useI18n();
  return (
    <Link to="/portal/customers" className="row small" style={{ gap: 4 }}>
      <Icon name="back" size={16} />
      {t('customers.back')}
    </Link>
  );
}

/** Sets or corrects the date of birth (a customer gives theirs once, in the Mini App). */
function BirthDateForm({ customerId, birthDate }: { customerId: string; birthDate: string | null }) {
  const { t } = useI18n();
  const [value, setValue] = useState(birthDate ?? '');
  const save = useAction(
    () => portalApi.patch(`/customers/${customerId}`, { birthDate: value === '' ? null : value }),
    { invalidate: [['customer', customerId]], success: t('customers.birthDateSaved') },
  );
  return (
    <form
      className="row"
      style={{ gap: 8, alignItems: 'flex-end', marginTop: 12 }}
      onSubmit={(event) => {
        event.preventDefault();
        save.mutate();
      }}
    >
      <TextField
        label={t('customers.birthDate')}
        type="date"
        value={value}
        onChange={setValue}
        hint={t('customers.birthDateHint')}
      />
      <Button type="submit" busy={save.isPending} disabled={value === (birthDate ?? '')}>
        {t('common.save')}
      </Button>
    </form>
  );
}

function AdjustCard({ customerId }: { customerId: string }) {
  const i18n = useI18n();
  const { t } = i18n;
  const [direction, setDirection] = useState<'add' | 'remove'>('add');
  const [amount, setAmount] = useState('');
  const [reason, setReason] = useState('');
  const points = /^\d{1,9}$/.test(amount.trim()) ? Number(amount) : null;
  const adjust = useAction(
    () =>
      portalApi.post(`/customers/${customerId}/adjustments`, {
        points: direction === 'add' ? (points ?? 0) : -(points ?? 0),
        reason: reason.trim(),
      }),
    {
      invalidate: [['customer', customerId], ['customers']],
      success: t('customers.adjusted'),
      onSuccess: () => {
        setAmount('');
        setReason('');
      },
    },
  );
  const isValid = points !== null && points > 0 && reason.trim().length > 0;
  return (
    <Card title={t('customers.adjust')} subtitle={t('customers.adjustHint')}>
      <form
        className="stack"
        onSubmit={(event) => {
          event.preventDefault();
          if (isValid) adjust.mutate();
        }}
      >
        <Segmented<'add' | 'remove'>
          label={t('customers.adjust')}
          value={direction}
          onChange={setDirection}
          options={[
            { value: 'add', label: t('customers.add') },
            { value: 'remove', label: t('customers.remove') },
          ]}
        />
        <TextField
          label={t('ledger.points')}
          inputMode="numeric"
          value={amount}
          onChange={setAmount}
          error={amount && points === null ? t('customers.pointsInvalid') : undefined}
        />
        <TextField
          label={t('ledger.reason')}
          value={reason}
          onChange={setReason}
          placeholder={t('customers.reasonPlaceholder')}
        />
        <Button type="submit" variant="primary" busy={adjust.isPending} disabled={!isValid}>
          {direction === 'add'
            ? t('customers.addPoints', { n: points ?? 0 })
            : t('customers.removePoints', { n: points ?? 0 })}
        </Button>
      </form>
    </Card>
  );
}
