// An order's life after its create, driven with SAP's own generated JavaScript client
// (@sap/cloud-sdk-vdm-sales-order-service): a line's quantity changed, a line rejected with a
// reason (SAP's way to cancel a line), the derived rejection status read back, and an unknown
// rejection reason refused in SAP's terms. Runs against SAP (the emulator) directly and against
// the proxy in every mode; with the route in `events` the order service takes the changes and
// sap-sync brings them to SAP.
//
// Writes the order number it used to $SAP_SDK_ORDER_FILE when set, so a caller can check SAP.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { BigNumber } = require('bignumber.js');
const { salesOrderService } = require('@sap/cloud-sdk-vdm-sales-order-service');

const { salesOrderApi, salesOrderItemApi } = salesOrderService();

const destination = { url: process.env.SAP_URL };
if (process.env.SAP_USER) {
  destination.username = process.env.SAP_USER;
  destination.password = process.env.SAP_PASSWORD || '';
}
if (process.env.SAP_CLIENT) {
  destination.sapClient = process.env.SAP_CLIENT;
}

const po = `SDK-LIFE-${Date.now()}-${process.pid}`;

function rootResponse(err) {
  for (let e = err; e; e = e.cause) if (e.response) return e.response;
  return undefined;
}

let number;

async function item(no) {
  return salesOrderItemApi.requestBuilder().getByKey(number, no).execute(destination);
}

test('an order to change is created', async () => {
  const order = salesOrderApi
    .entityBuilder()
    .salesOrderType('OR')
    .salesOrganization('1010')
    .distributionChannel('10')
    .organizationDivision('00')
    .soldToParty('17100001')
    .purchaseOrderByCustomer(po)
    .toItem(
      [['TG11', 2], ['TG12', 5]].map(([material, quantity]) =>
        salesOrderItemApi
          .entityBuilder()
          .material(material)
          .requestedQuantity(new BigNumber(quantity))
          .requestedQuantityUnit('PC')
          .build()
      )
    )
    .build();
  const created = await salesOrderApi.requestBuilder().create(order).execute(destination);
  number = created.salesOrder;
  assert.match(number, /^\d+$/);
  if (process.env.SAP_SDK_ORDER_FILE) fs.writeFileSync(process.env.SAP_SDK_ORDER_FILE, number);
});

test('a line\'s quantity is changed and the order stays priced', async () => {
  assert.ok(number, 'create ran first');
  const line = await item('10');
  line.requestedQuantity = new BigNumber(7);
  await salesOrderItemApi.requestBuilder().update(line).execute(destination);
  const after = await item('10');
  assert.ok(after.requestedQuantity.isEqualTo(7));
  const order = await salesOrderApi
    .requestBuilder()
    .getByKey(number)
    .select(salesOrderApi.schema.TOTAL_NET_AMOUNT, salesOrderApi.schema.TO_ITEM)
    .execute(destination);
  const lines = order.toItem.reduce((sum, i) => sum.plus(i.netAmount || 0), new BigNumber(0));
  assert.ok(order.totalNetAmount.isGreaterThan(0), 'still priced');
  assert.ok(order.totalNetAmount.isEqualTo(lines), `total ${order.totalNetAmount} = lines ${lines}`);
});

test('a line is rejected with a reason and the order shows it partly rejected', async () => {
  assert.ok(number, 'create ran first');
  const line = await item('20');
  line.salesDocumentRjcnReason = '02';
  await salesOrderItemApi.requestBuilder().update(line).execute(destination);
  assert.equal((await item('20')).salesDocumentRjcnReason, '02');
  const order = await salesOrderApi.requestBuilder().getByKey(number).execute(destination);
  assert.equal(order.overallSdDocumentRejectionSts, 'B');
});

test('an unknown rejection reason is refused in SAP\'s terms and changes nothing', async () => {
  assert.ok(number, 'create ran first');
  const line = await item('10');
  line.salesDocumentRjcnReason = 'Q9';
  await assert.rejects(salesOrderItemApi.requestBuilder().update(line).execute(destination), (err) => {
    const response = rootResponse(err);
    assert.equal(response?.status, 400);
    assert.equal(response?.data?.error?.code, 'V1/206');
    return true;
  });
  assert.equal((await item('10')).salesDocumentRjcnReason, '');
});
