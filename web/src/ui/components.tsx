import { type ButtonHTMLAttributes, type ReactNode, useEffect, useId, useRef, useState } from 'react';
import { type Locale, type MessageKey, useI18n } from '../i18n';
import { Icon, type IconName } from './icons';
import { errorText } from './Toasts';

type ButtonVariant = 'default' | 'primary' | 'danger' | 'danger-solid' | 'ghost';

/** A button with variants, a busy state (spinner, disabled) and an optional icon. */
export function Button({
  variant = 'default',
  size,
  busy,
  icon,
  block,
  children,
  className,
  type = 'button',
  ...rest
}: ButtonHTMLAttributes<HTMLButtonElement> & {
  variant?: ButtonVariant;
  size?: 'sm';
  busy?: boolean;
  icon?: IconName;
  block?: boolean;
}) {
  const classes = [
    'btn',
    variant === 'default' ? '' : `btn-${variant}`,
    size === 'sm' ? 'btn-sm' : '',
    block ? 'btn-block' : '',
    className ?? '',
  ]
    .filter(Boolean)
    .join(' ');
  return (
    <button
      type={type}
      className={classes}
      disabled={busy || rest.disabled}
      aria-busy={busy || undefined}
      {...rest}
    >
      {busy ? <span className="spinner" aria-hidden="true" /> : icon ? <Icon name={icon} size={16} /> : null}
      {children}
    </button>
  );
}

/** A card with an optional header (title, subtitle, actions). */
export function Card({
  title,
  subtitle,
  actions,
  children,
  padded = true,
  className,
}: {
  title?: ReactNode;
  subtitle?: ReactNode;
  actions?: ReactNode;
  children?: ReactNode;
  padded?: boolean;
  className?: string;
}) {
  return (
    <section className={`card ${className ?? ''}`}>
      {title || actions ? (
        <header className="card-header">
          <div>
            {title ? <h2>{title}</h2> : null}
            {subtitle ? <p>{subtitle}</p> : null}
          </div>
          {actions ? <div className="row">{actions}</div> : null}
        </header>
      ) : null}
      {padded ? <div className="card-body">{children}</div> : children}
    </section>
  );
}

/** The title row of a page. */
export function PageHeader({
  title,
  subtitle,
  actions,
}: {
  title: string;
  subtitle?: ReactNode;
  actions?: ReactNode;
}) {
  useEffect(() => {
    document.title = `${title} · Loyalty`;
  }, [title]);
  return (
    <div className="page-header">
      <div>
        <h1>{title}</h1>
        {subtitle ? <p>{subtitle}</p> : null}
      </div>
      {actions ? <div className="row">{actions}</div> : null}
    </div>
  );
}

/** A labelled form field; the child is the control (it receives the generated id). */
export function Field({
  label,
  hint,
  error,
  children,
  className,
}: {
  label: ReactNode;
  hint?: ReactNode;
  error?: ReactNode;
  children: (id: string, describedBy: string | undefined) => ReactNode;
  className?: string;
}) {
  const id = useId();
  const hintId = hint || error ? `${id}-hint` : undefined;
  return (
    <div className={`field ${className ?? ''}`}>
      <label className="field-label" htmlFor={id}>
        {label}
      </label>
      {children(id, hintId)}
      {error ? (
        <span className="field-error" id={hintId}>
          {error}
        </span>
      ) : hint ? (
        <span className="field-hint" id={hintId}>
          {hint}
        </span>
      ) : null}
    </div>
  );
}

/** A text input field. */
export function TextField({
  label,
  value,
  onChange,
  hint,
  error,
  type = 'text',
  placeholder,
  suffix,
  inputMode,
  autoComplete,
  required,
  disabled,
  name,
  autoFocus,
}: {
  label: ReactNode;
  value: string;
  onChange: (value: string) => void;
  hint?: ReactNode;
  error?: ReactNode;
  type?: string;
  placeholder?: string;
  suffix?: string;
  inputMode?: 'text' | 'decimal' | 'numeric' | 'tel' | 'email' | 'search' | 'url';
  autoComplete?: string;
  required?: boolean;
  disabled?: boolean;
  name?: string;
  autoFocus?: boolean;
}) {
  return (
    <Field label={label} hint={hint} error={error}>
      {(id, describedBy) => {
        const input = (
          <input
            id={id}
            name={name}
            className="input"
            type={type}
            value={value}
            placeholder={placeholder}
            inputMode={inputMode}
            autoComplete={autoComplete}
            required={required}
            disabled={disabled}
            // biome-ignore lint/a11y/noAutofocus: only the first field of a sign-in form or a dialog
            autoFocus={autoFocus}
            aria-invalid={error ? true : undefined}
            aria-describedby={describedBy}
            onChange={(event) => onChange(event.target.value)}
          />
        );
        return suffix ? (
          <div className="input-affix">
            {input}
            <span className="affix">{suffix}</span>
          </div>
        ) : (
          input
        );
      }}
    </Field>
  );
}

/** A select field. */
export function SelectField({
  label,
  value,
  onChange,
  options,
  hint,
  disabled,
}: {
  label: ReactNode;
  value: string;
  onChange: (value: string) => void;
  options: Array<{ value: string; label: string }>;
  hint?: ReactNode;
  disabled?: boolean;
}) {
  return (
    <Field label={label} hint={hint}>
      {(id, describedBy) => (
        <select
          id={id}
          className="select"
          value={value}
          disabled={disabled}
          aria-describedby={describedBy}
          onChange={(event) => onChange(event.target.value)}
        >
          {options.map((option) => (
            <option key={option.value} value={option.value}>
              {option.label}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
}

/** An on/off switch with its label. */
export function Switch({
  checked,
  onChange,
  label,
  disabled,
}: {
  checked: boolean;
  onChange: (checked: boolean) => void;
  label: ReactNode;
  disabled?: boolean;
}) {
  return (
    <label className="switch">
      <input
        type="checkbox"
        role="switch"
        aria-checked={checked}
        checked={checked}
        disabled={disabled}
        onChange={(event) => onChange(event.target.checked)}
      />
      <span className="switch-track" aria-hidden="true" />
      <span>{label}</span>
    </label>
  );
}

type Tone = 'default' | 'success' | 'warning' | 'danger' | 'info';

/** A small status pill. */
export function Badge({ tone = 'default', children }: { tone?: Tone; children: ReactNode }) {
  return <span className={`badge ${tone === 'default' ? '' : `badge-${tone}`}`}>{children}</span>;
}

/** A coloured note. */
export function Callout({
  tone = 'info',
  children,
}: {
  tone?: 'info' | 'warning' | 'danger' | 'success';
  children: ReactNode;
}) {
  return (
    <div
      className={`callout ${tone === 'info' ? '' : `callout-${tone}`}`}
      role={tone === 'danger' ? 'alert' : undefined}
    >
      {tone === 'warning' || tone === 'danger' ? <Icon name="alert" /> : null}
      <div>{children}</div>
    </div>
  );
}

/** A centered spinner with a label. */
export function Loading({ label }: { label?: string }) {
  const { t } = useI18n();
  return (
    <div className="loading" role="status">
      <span className="spinner" aria-hidden="true" />
      <span>{label ?? t('common.loading')}</span>
    </div>
  );
}

/** What a list shows when it has nothing in it. */
export function EmptyState({
  title,
  hint,
  icon = 'inbox',
  action,
}: {
  title: string;
  hint?: string;
  icon?: IconName;
  action?: ReactNode;
}) {
  return (
    <div className="empty">
      <div className="empty-icon">
        <Icon name={icon} size={20} />
      </div>
      <div className="empty-title">{title}</div>
      {hint ? <div className="small">{hint}</div> : null}
      {action}
    </div>
  );
}

/** A failed load with the API's message and a retry button. */
export function ErrorState({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  const { t } = useI18n();
  return (
    <div className="empty" role="alert">
      <div className="empty-icon" style={{ background: 'var(--danger-soft)', color: 'var(--danger)' }}>
        <Icon name="alert" size={20} />
      </div>
      <div className="empty-title">{t('error.loadFailed')}</div>
      <div className="small">{errorText(error, t('error.generic'))}</div>
      {onRetry ? (
        <Button size="sm" icon="refresh" onClick={onRetry}>
          {t('common.retry')}
        </Button>
      ) : null}
    </div>
  );
}

/** Copies text to the clipboard, with a fallback for insecure origins (plain http on a LAN). */
export async function copyText(text: string): Promise<void> {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = document.createElement('textarea');
  area.value = text;
  area.style.position = 'fixed';
  area.style.opacity = '0';
  document.body.append(area);
  area.select();
  document.execCommand('copy');
  area.remove();
}

/** A secret shown once: monospace, selectable, with a copy button. */
export function SecretBox({ value, label, testId }: { value: string; label: string; testId?: string }) {
  const { t } = useI18n();
  const [isCopied, setCopied] = useState(false);
  return (
    <div className="secret-box">
      <span className="sr-only">{label}</span>
      <code data-testid={testId}>{value}</code>
      <Button
        icon={isCopied ? 'check' : 'copy'}
        onClick={async () => {
          await copyText(value);
          setCopied(true);
          setTimeout(() => setCopied(false), 2000);
        }}
      >
        {isCopied ? t('common.copied') : t('common.copy')}
      </Button>
    </div>
  );
}

/** A modal dialog: focus moves in, Escape closes, the backdrop closes. */
export function Modal({
  title,
  children,
  footer,
  onClose,
  wide,
}: {
  title: string;
  children: ReactNode;
  footer?: ReactNode;
  onClose: () => void;
  /** A wider dialog for long forms (two columns). */
  wide?: boolean;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const titleId = useId();
  useEffect(() => {
    const previous = document.activeElement as HTMLElement | null;
    const focusable = ref.current?.querySelector<HTMLElement>(
      'input, select, textarea, button:not([data-close])',
    );
    (focusable ?? ref.current)?.focus();
    const onKey = (event: KeyboardEvent) => {
      if (event.key === 'Escape') onClose();
    };
    document.addEventListener('keydown', onKey);
    return () => {
      document.removeEventListener('keydown', onKey);
      previous?.focus?.();
    };
  }, [onClose]);
  return (
    // biome-ignore lint/a11y/noStaticElementInteractions: a backdrop click is a mouse shortcut; Escape and the buttons close it for keyboards
    <div
      className="modal-backdrop"
      role="presentation"
      onMouseDown={(event) => {
        if (event.target === event.currentTarget) onClose();
      }}
    >
      <div
        className={wide ? 'modal modal-wide' : 'modal'}
        role="dialog"
        aria-modal="true"
        aria-labelledby={titleId}
        ref={ref}
        tabIndex={-1}
      >
        <div className="modal-header">
          <h2 id={titleId}>{title}</h2>
        </div>
        <div className="modal-body">{children}</div>
        {footer ? <div className="modal-footer">{footer}</div> : null}
      </div>
    </div>
  );
}

/** Asks before a destructive action. */
export function ConfirmDialog({
  title,
  text,
  confirmLabel,
  busy,
  onConfirm,
  onCancel,
}: {
  title: string;
  text: ReactNode;
  confirmLabel: string;
  busy?: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const { t } = useI18n();
  return (
    <Modal
      title={title}
      onClose={onCancel}
      footer={
        <>
          <Button onClick={onCancel} data-close>
            {t('common.cancel')}
          </Button>
          <Button variant="danger-solid" busy={busy} onClick={onConfirm}>
            {confirmLabel}
          </Button>
        </>
      }
    >
      <p>{text}</p>
    </Modal>
  );
}

/** RU / EN toggle. */
export function LanguageSwitch() {
  const { locale, setLocale, t } = useI18n();
  const options: Locale[] = ['ru', 'en'];
  return (
    // biome-ignore lint/a11y/useSemanticElements: a labelled group of toggle buttons
    <div className="lang-switch" role="group" aria-label={t('common.language')}>
      {options.map((option) => (
        <button key={option} type="button" aria-pressed={locale === option} onClick={() => setLocale(option)}>
          {option.toUpperCase()}
        </button>
      ))}
    </div>
  );
}

/** A row of toggle buttons choosing one value. */
export function Segmented<T extends string>({
  value,
  options,
  onChange,
  label,
}: {
  value: T;
  options: Array<{ value: T; label: string }>;
  onChange: (value: T) => void;
  label: string;
}) {
  return (
    // biome-ignore lint/a11y/useSemanticElements: a labelled group of toggle buttons
    <div className="segmented" role="group" aria-label={label}>
      {options.map((option) => (
        <button
          key={option.value}
          type="button"
          aria-pressed={value === option.value}
          onClick={() => onChange(option.value)}
        >
          {option.label}
        </button>
      ))}
    </div>
  );
}

/** A KPI tile. */
export function Kpi({
  label,
  value,
  hint,
  wide,
}: {
  label: string;
  value: ReactNode;
  hint?: ReactNode;
  /** Two columns of a KPI grid: for a figure as long as a money total. */
  wide?: boolean;
}) {
  return (
    <div className={wide ? 'card kpi kpi-wide' : 'card kpi'}>
      <div className="kpi-label">{label}</div>
      <div className="kpi-value">{value}</div>
      {hint ? <div className="kpi-hint">{hint}</div> : null}
    </div>
  );
}

/** Points with a sign and colour (+ green, − red). */
export function PointsDelta({ value }: { value: number }) {
  const { num } = useI18n();
  const sign = value > 0 ? '+' : value < 0 ? '−' : '';
  return (
    <span
      className={value > 0 ? 'positive' : value < 0 ? 'negative' : ''}
    >{`${sign}${num(Math.abs(value))}`}</span>
  );
}

/** Debounces a value (for live previews and search boxes). */
export function useDebounced<T>(value: T, ms: number): T {
  const [debounced, setDebounced] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setDebounced(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return debounced;
}

/** A translated label for a known code, or the code itself. */
export function useLabel(prefix: string) {
  const { t } = useI18n();
  return (code: string) => {
    const key = `${prefix}.${code}` as MessageKey;
    const text = t(key);
    return text === key ? code : text;
  };
}

/** The edit and delete buttons at the end of a table row. */
export function RowActions({
  onEdit,
  onDelete,
  deleteLabel,
}: {
  onEdit: () => void;
  onDelete: () => void;
  /** Defaults to "Delete". */
  deleteLabel?: string;
}) {
  const { t } = useI18n();
  return (
    <div className="row">
      <Button size="sm" onClick={onEdit}>
        {t('common.edit')}
      </Button>
      <Button size="sm" variant="danger" onClick={onDelete}>
        {deleteLabel ?? t('common.delete')}
      </Button>
    </div>
  );
}
