// Back office page: the tables it needs from the case model (shared/src/model.cpp), in
// Spanish, plus small helpers (byte limits, datetime-local in Bolivia's time, the member
// a server error names). Plain ES module.

/** Every seed step: code → [role, label] (from shared/src/model.cpp). */
export const STEPS = {
  "m1.01": ["customer_service", "Recibe solicitud de traslado (cobre a FTTH BOOT)"],
  "m1.02": ["customer_service", "Recaba datos del cliente e indica el costo"],
  "m1.03": ["customer_service", "Envía formulario al Jefe Administrativo Comercial INET"],
  "m1.04": ["commercial_head", "Deriva la solicitud a un ejecutivo de ventas"],
  "m1.05": ["sales_executive", "Contacta al cliente"],
  "m1.06": ["sales_executive", "Verifica factibilidad técnica"],
  "m1.07": ["sales_executive", "Verifica requisitos (Anexo 2)"],
  "m1.08": ["sales_executive", "Ingresa la pre venta de traslado"],
  "m1.09": ["sales_executive", "Indica al cliente que no es posible realizar el traslado"],
  "m1.10": ["back_office", "Retira el producto (baja por cambio de tecnología)"],
  "m1.11": ["back_office", "Cambio de datos de contrato: nueva dirección"],
  "m1.12": ["back_office", "Alta del producto, GPON dato técnico; genera la OT"],
  "m1.13": ["back_office", "Digita el cobro de traslado"],
  "m1.14": ["technician", "Instalación FTTH y recojo de equipos de cobre (Anexo 4)"],
  "m2.01": ["customer_service", "Recibe solicitud de traslado (FTTH COMTECO a BOOT)"],
  "m2.02": ["customer_service", "Recaba datos del cliente e indica el costo"],
  "m2.03": ["customer_service", "Envía formulario al Jefe Administrativo Comercial INET"],
  "m2.04": ["commercial_head", "Deriva la solicitud a un ejecutivo de ventas"],
  "m2.05": ["sales_executive", "Contacta al cliente"],
  "m2.06": ["sales_executive", "Verifica factibilidad técnica"],
  "m2.07": ["sales_executive", "Verifica requisitos (Anexo 2)"],
  "m2.08": ["sales_executive", "Ingresa la pre venta de traslado"],
  "m2.09": ["sales_executive", "Indica al cliente que no es posible realizar el traslado"],
  "m2.10": ["back_office", "Traslado de productos: nueva dirección, dato técnico GIS"],
  "m2.11": ["back_office", "Cambio de datos de contrato; genera la OT"],
  "m2.12": ["back_office", "Comunica al cliente que lleve sus equipos a la nueva dirección"],
  "m2.13": ["technician", "Traslado FTTH y verificación de equipos"],
  "m3.01": ["sales_executive", "Recibe solicitud de traslado (BOOT a FTTH COMTECO)"],
  "m3.02": ["sales_executive", "Recaba datos del cliente"],
  "m3.03": ["sales_executive", "Envía datos a la Encargada de Plataforma"],
  "m3.04": ["platform_officer", "Deriva la solicitud a un asesor comercial"],
  "m3.05": ["commercial_advisor", "Verifica requisitos: fotocopia C.I., Formulario Plan B (Anexo 2)"],
  "m3.06": ["commercial_advisor", "Verifica factibilidad técnica"],
  "m3.07": ["commercial_advisor", "Traslado de producto: contrato nuevo, plan, observaciones"],
  "m3.08": ["commercial_advisor", "Comunica al cliente que lleve sus equipos"],
  "m3.09": ["commercial_advisor", "Resumen de pedido y cobro, confirmación del cliente"],
  "m3.10": ["commercial_advisor", "Imprime Solicitud de Servicios; genera OT de baja"],
  "m3.11": ["technician", "Traslado FTTH y verificación de equipos"],
  "m4.01": ["sales_executive", "Recibe solicitud de traslado (BOOT a cobre COMTECO)"],
  "m4.02": ["sales_executive", "Recaba datos del cliente"],
  "m4.03": ["sales_executive", "Envía datos a la Encargada de Plataforma"],
  "m4.04": ["platform_officer", "Deriva la solicitud a un asesor comercial"],
  "m4.09": ["commercial_advisor", "Verifica requisitos: fotocopia C.I., Formulario Plan B (Anexo 2)"],
  "m4.10": ["commercial_advisor", "Verifica factibilidad técnica"],
  "m4.11": ["commercial_advisor", "Traslado de producto: contrato nuevo, destickea (cambio de tecnología)"],
  "m4.12": ["commercial_advisor", "Comunica al cliente que devuelva los equipos FTTH al técnico"],
  "m4.13": ["commercial_advisor", "Resumen de pedido y cobro, confirmación del cliente"],
  "m4.14": ["commercial_advisor", "Imprime Solicitud de Servicios; genera OT de baja"],
  "m4.15": ["commercial_advisor", "Gestión de productos: alta en cobre"],
  "m4.16": ["commercial_advisor", "Verifica consentimiento del cliente"],
  "m4.17": ["commercial_advisor", "Imprime solicitud de traslado (alta); remite a instalación"],
  "m4.18": ["technician", "Recojo de GPON y accesorios (Anexo 4) e instalación en cobre"],
};

/** A step's label, or '' when unknown. */
export function stepLabel(code) {
  return (STEPS[code] && STEPS[code][1]) || '';
}

export const OFFICE_ROLES = [
  'customer_service', 'commercial_head', 'sales_executive', 'platform_officer',
  'commercial_advisor', 'back_office', 'supervisor',
];

/** Who may do what (docs/api.md, section 4); the server has the last word. */
export const CAN = {
  open: ['customer_service', 'sales_executive', 'supervisor'],
  edit: ['customer_service', 'sales_executive', 'commercial_advisor', 'back_office', 'supervisor'],
  review: ['sales_executive', 'commercial_advisor', 'supervisor'], // contact, feasibility, requirements, approve, reject
  cancel: ['back_office', 'supervisor'],
  dispatch: ['back_office', 'supervisor'], // issue OTs, assign, missing, resolve items
  override: ['supervisor'],
  discrepancies: ['back_office', 'supervisor'],
};

/** Who routes a case of this modality, and to which role. */
export function routeRule(modality) {
  return modality <= 2
    ? { by: ['commercial_head', 'supervisor'], target: 'sales_executive', targetLabel: 'Ejecutivo de Ventas' }
    : { by: ['platform_officer', 'supervisor'], target: 'commercial_advisor', targetLabel: 'Asesor Comercial COMTECO' };
}

/** The modalities a role may open. */
export function openableModalities(role) {
  if (role === 'customer_service') return [1, 2];
  if (role === 'sales_executive') return [3, 4];
  if (role === 'supervisor') return [1, 2, 3, 4];
  return [];
}

export const PRODUCTS = [
  ['telefonia_fija', 'Telefonía fija'],
  ['internet', 'Internet'],
  ['tv_cable', 'TV cable'],
  ['duo_multipack', 'Duo/Multipack'],
];

export const OT_KINDS = {
  install_ftth: 'Instalación FTTH',
  relocate_ftth: 'Traslado FTTH',
  withdraw_boot: 'Retiro BOOT (baja)',
  install_copper: 'Instalación cobre',
};

export const LINE_STATUS = {
  matched: 'Coincide', unexpected: 'No esperado', missing: 'Faltante', damaged: 'Dañado',
  pending: 'Pendiente', signature_mismatch: 'La firma del cliente no corresponde a las filas',
};

export const RECEIPTS = {
  received: 'Recibido', missing: 'No llegó al almacén', damaged_on_arrival: 'Llegó dañado',
};

/** Optional fields of "Registrar paso", with the roles that may write each one. */
export const STEP_FIELDS = [
  ['observations', 'Observaciones', 4000, ['customer_service', 'sales_executive', 'commercial_advisor', 'back_office', 'supervisor']],
  ['gpon_data', 'GPON dato técnico', 500, ['back_office', 'supervisor']],
  ['gis_box', 'Caja GIS', 200, ['back_office', 'supervisor']],
  ['new_contract', 'Contrato nuevo', 64, ['sales_executive', 'commercial_advisor', 'supervisor']],
  ['commercial_plan', 'Plan comercial', 200, ['sales_executive', 'commercial_advisor', 'back_office', 'supervisor']],
];

export const FINAL = ['rejected', 'closed', 'cancelled'];

/** UTF-8 length of a text (the API's limits are in bytes). */
export function bytes(s) {
  return new TextEncoder().encode(s).length;
}

/** A datetime-local value (Bolivia's time, UTC-4) as ms since 1970; 0 when empty. */
export function localToMs(v) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(v || '');
  if (!m) return 0;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]) + 4 * 3600000;
}

/** The body member a server message starts with ("person_type is …", "to: …"), or ''. */
export function memberOf(message) {
  const m = /^([a-z_]+)(?:\[\d+\])?(?:\.[a-z_]+)?(?::|\s)/.exec(message || '');
  return m ? m[1] : '';
}

/** A closing blocker of the server (English) in Spanish; unknown ones as they come. */
export function blockerEs(b, statusLabels = {}) {
  let m = /^OT (\w+) is '(\w+)'$/.exec(b);
  if (m) return `La OT ${OT_KINDS[m[1]] || m[1]} está ${(statusLabels[m[2]] || m[2]).toLowerCase()}`;
  m = /^(.+) has not been received by the warehouse$/.exec(b);
  if (m) return `${m[1]}: el almacén aún no lo recibió`;
  m = /^(.+) is missing and has no reason$/.exec(b);
  if (m) return `${m[1]}: falta y no tiene motivo registrado`;
  m = /^(.+) did not arrive at the warehouse$/.exec(b);
  if (m) return `${m[1]}: no llegó al almacén (resuelva la discrepancia)`;
  if (b === 'no OT has been issued') return 'No se emitió ninguna OT';
  return b;
}
