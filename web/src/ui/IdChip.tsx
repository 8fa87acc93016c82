import { useState } from 'react';
import { useI18n } from '../i18n';
import { copyText } from './components';
import { Icon } from './icons';

/** A shortened id with a copy button (POS systems need the full id). */
export function IdChip({ id }: { id: string }) {
  const { t } = useI18n();
  const [isCopied, setCopied] = useState(false);
  return (
    <button
      type="button"
      className="badge mono"
      title={id}
      aria-label={`${t('common.copyId')} ${id}`}
      style={{ cursor: 'pointer' }}
      onClick={async (event) => {
        event.stopPropagation();
        await copyText(id);
        setCopied(true);
        setTimeout(() => setCopied(false), 1500);
      }}
    >
      {id.slice(0, 8)}
      <Icon name={isCopied ? 'check' : 'copy'} size={12} />
    </button>
  );
}
